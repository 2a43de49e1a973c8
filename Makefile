# Developer shortcuts; the README's commands are scripts/demo.sh and scripts/test.sh, which need
# nothing but bash on a fresh Debian 12 machine.
BUILD ?= build

.PHONY: all deps demo test check format bench clean
all:
	bash scripts/build.sh $(BUILD)
deps:
	bash scripts/setup.sh
demo:
	bash scripts/demo.sh
test:
	bash scripts/test.sh
check: all # the quick loop: default build, every ctest but the packaging test (scripts/test.sh runs it)
	cd $(BUILD) && ctest -LE package --output-on-failure
format:
	clang-format -i $$(git ls-files '*.c' '*.h')
bench: all
	TAILJET=$(BUILD)/tailjet bash bench/parse.sh
clean:
	rm -rf build build-asan build-fuzz build-tsan
