# port_specs.rb: turns logstash-patterns-core's RSpec pattern cases into tailjet test data.
#
#   ruby tests/logstash/port_specs.rb REPO_GIT_DIR REV OUT_DIR
#
# It evaluates each spec/patterns/*_spec.rb of REV under a stand-in for the few RSpec and grok
# helpers those files call. Nothing is matched here: grok_match() returns a recorder, and every
# expectation on it is written down as data (the expression, the line, the ECS mode and the
# check). The result is one NDJSON file per family in OUT_DIR, read by tests/test_logstash.c.
# An example the recorder cannot follow (Ruby arithmetic on a matched value, say) is written as
# {"unported": reason} so the count of what was left out stays visible.
require 'json'
require 'open3'

module Port
  CASES = {}     # [family, mode, case, expr, line] -> checks
  UNPORTED = []
  class Unportable < StandardError; end

  def self.add(ctx, check)
    check['pending'] = true if $example&.pending?
    key = [ctx[:family], ctx[:mode], ctx[:case], ctx[:expr], ctx[:line]]
    (CASES[key] ||= []) << check
  end
end

# A matched event, not known yet: indexing and .keys only build a path.
class Rec
  attr_reader :ctx, :path, :conv
  def initialize(ctx, path = [], conv = nil)
    @ctx, @path, @conv = ctx, path, conv
  end
  def [](k)
    raise Port::Unportable, "index by #{k.class}" unless k.is_a?(String) || k.is_a?(Integer)
    Rec.new(@ctx, @path + [k])
  end
  def dig(*ks) = ks.reduce(self) { |r, k| r[k] }
  def get(ref) = Rec.new(@ctx, @path + ref.to_s.scan(/\[([^\]]+)\]/).flatten.then { |a| a.empty? ? [ref.to_s] : a })
  def keys = Rec.new(@ctx, @path, :keys)
  def last = Rec.new(@ctx, @path + [-1])
  def first = Rec.new(@ctx, @path + [0])
  def to_s = Rec.new(@ctx, @path, :str)
  def to_i = Rec.new(@ctx, @path, :int)
  def to_hash = self
  def method_missing(m, *a) = raise(Port::Unportable, "uses .#{m} of a matched value")
  def respond_to_missing?(*) = false
end

class HashIncluding
  attr_reader :h
  def initialize(h) = @h = h
end

def jsonable(v)
  case v
  when HashIncluding then { '$subset' => jsonable(v.h) }
  when Hash then v.to_h { |k, x| [k.to_s, jsonable(x)] }
  when Array then v.map { |x| jsonable(x) }
  when Symbol then v.to_s
  when Regexp then { '$regex' => v.source }
  when Class then { '$class' => v.name }
  else v
  end
end

Matcher = Struct.new(:op, :arg)

module LogStash
  class Event
    attr_accessor :message, :rec
    def initialize(h) = @message = h['message']
    def to_hash = (@rec or raise Port::Unportable, 'event never filtered')
    def get(ref) = to_hash.get(ref)
    def [](k) = to_hash[k]
    def method_missing(m, *a) = raise(Port::Unportable, "uses Event##{m}")
  end
  module Filters
    class Grok
      def initialize(opts)
        m = opts['match']
        m = m.to_a.flatten if m.is_a?(Hash)
        raise Port::Unportable, 'several grok expressions' unless m.is_a?(Array) && m.size == 2
        @expr = m[1]
        @mode = opts['ecs_compatibility']&.to_s
        @defs = opts['pattern_definitions']
        raise Port::Unportable, 'pattern_definitions' if @defs
      end
      def register = self
      def filter(ev)
        ctx = $example.ctx_for(@expr, ev.message)
        ctx[:mode] = (@mode == 'disabled' ? 'disabled' : 'v1') if @mode
        ev.rec = Rec.new(ctx)
      end
    end
  end
end

# One running example: lets, subject, helpers.
class Example
  attr_reader :group, :name
  def initialize(group, name)
    @group, @name, @memo = group, name, {}
    install_lets
  end
  def mode = @group.mode # 'legacy', 'ecs-v1' or nil
  def pattern_mode = mode
  def ecs_compatibility
    { 'legacy' => :disabled, 'ecs-v1' => :v1, nil => nil }.fetch(mode)
  end
  def ecs_compatibility?
    { 'legacy' => false, 'ecs-v1' => true, nil => nil }.fetch(mode)
  end
  # lets become methods, one module per group from the outermost in (so super() reaches the
  # enclosing group's let), memoized by a last module
  def install_lets
    names = []
    @group.chain.each do |g|
      next if g.lets.empty?
      mod = Module.new
      g.lets.each { |n, b| mod.send(:define_method, n, &b); names << n }
      extend(mod)
    end
    memo = Module.new
    names.uniq.each do |n|
      memo.send(:define_method, n) { @memo.key?(n) ? @memo[n] : (@memo[n] = super()) }
    end
    extend(memo)
  end
  def subject
    s = @group.find_subject
    return @memo[:__subject] ||= instance_exec(&s) if s
    @group.first_arg # RSpec's implicit subject: the innermost group's first description arg
  end
  def ctx_for(expr, line)
    # nil mode: the plugin's default; the specs written that way expect legacy names.
    { family: $family, mode: { 'ecs-v1' => 'v1', 'legacy' => 'disabled', nil => 'default' }[mode],
      case: "#{@group.full_name} #{@name}".strip, expr: expr, line: line }
  end
  def grok_match(label, message, exact = false) = grok_match_event(label, message, exact).to_hash
  def grok_exact_match(label, message) = grok_match(label, message, true)
  def grok_match_event(label, message, exact = false)
    ev = build_event(message)
    build_grok(label, exact).filter(ev)
    ev
  end
  def build_grok(label, exact = false)
    o = { 'match' => ['message', exact ? "^%{#{label}}$" : "%{#{label}}"] }
    LogStash::Filters::Grok.new(o)
  end
  def build_event(message) = LogStash::Event.new('message' => message)
  def expect(x = nil) = Expectation.new(x)
  def is_expected = expect(subject)
  def should(m) = expect(subject).to(m)
  def should_not(m) = expect(subject).not_to(m)
  def include(*a) = Matcher.new(:include, a)
  def hash_including(h) = HashIncluding.new(h)
  alias a_hash_including hash_including
  def eq(v) = Matcher.new(:eq, v)
  alias eql eq
  alias equal eq
  def be(v = :__none) = v == :__none ? Matcher.new(:be, nil) : Matcher.new(:eq, v)
  def be_nil = Matcher.new(:eq, nil)
  def be_a(c) = Matcher.new(:is_a, c)
  alias be_an be_a
  def pass = Matcher.new(:pass, nil)
  def match(v) = Matcher.new(:match, v)
  def start_with(v) = Matcher.new(:start_with, v)
  def end_with(v) = Matcher.new(:end_with, v)
  def have_key(k) = Matcher.new(:include, [k])
  # RSpec's pending: what follows is expected to fail in Logstash too; kept, marked as such.
  def pending(_why = nil) = @pending = true
  def pending? = !!@pending
  def fail(msg = nil) = raise(Port::Unportable, "fail #{msg}")
end

class Expectation
  def initialize(x) = @x = x
  def to(m, _msg = nil) = record(m, false)
  def not_to(m, _msg = nil) = record(m, true)
  alias to_not not_to
  def record(m, neg)
    x = @x
    if x.is_a?(String) && m.op == :match && m.arg.is_a?(String)
      # expect(PATTERN_NAME).to match(line): the helper greps the line with %{NAME}.
      ex = $example.build_grok(x)
      ev = $example.build_event(m.arg)
      ex.filter(ev)
      x, m = ev.to_hash, Matcher.new(:pass, nil)
    end
    if x.is_a?(LogStash::Event)
      x = x.to_hash
    end
    unless x.is_a?(Rec)
      # a plain Ruby value (a let, a local): check it here, there is nothing to record.
      ok = case m.op
           when :eq then x == m.arg
           when :include then m.arg.all? { |a| x.include?(a) }
           when :start_with then x.start_with?(m.arg)
           when :end_with then x.end_with?(m.arg)
           else raise Port::Unportable, "#{m.op} on a plain value"
           end
      raise Port::Unportable, "a plain-value expectation fails in Ruby: #{x.inspect[0, 60]}" if ok == neg
      return
    end
    c = { 'op' => m.op.to_s, 'path' => x.path }
    c['conv'] = x.conv.to_s if x.conv
    c['not'] = true if neg
    case m.op
    when :pass then c.delete('path')
    when :include
      c['value'] = m.arg.size == 1 ? jsonable(m.arg[0]) : jsonable(m.arg)
      c['op'] = 'contains' unless m.arg[0].is_a?(Hash)
      c['value'] = jsonable(m.arg) if c['op'] == 'contains' && !c['value'].is_a?(Array)
    when :eq, :start_with, :end_with, :match then c["value"] = jsonable(m.arg)
    when :is_a then c['value'] = m.arg.name
    else raise Port::Unportable, "matcher #{m.op}"
    end
    Port.add(x.ctx, c)
  end
end

class Group
  def self.mode_name(m) = { 'ecs-v1' => 'v1', 'legacy' => 'disabled', nil => 'default' }[m]
  attr_reader :parent, :name, :lets, :hooks, :children, :examples, :subj
  attr_accessor :mode, :shared_args
  def initialize(parent, name, mode = nil)
    @parent, @name, @mode = parent, name, mode
    @lets, @hooks, @examples, @subj = {}, [], [], nil
  end
  def root_name = @parent ? @parent.root_name : @name
  def full_name = [@parent&.full_name, @name].compact.join(' > ')
  def find_let(m) = @lets[m] || @parent&.find_let(m)
  def chain = (@parent ? @parent.chain : []) + [self]
  def find_subject = @subj || @parent&.find_subject
  def all_hooks = (@parent ? @parent.all_hooks : []) + @hooks
  # DSL
  def let(n, &b) = @lets[n] = b
  def subject(n = nil, &b)
    @subj = b
    @lets[n] = b if n
  end
  def before(*_a, &b) = @hooks << b
  def after(*_a, &b) = nil
  attr_accessor :first_arg
  def context(name, *more, &b)
    g = Group.new(self, ([name] + more).join(' '), @mode)
    g.first_arg = name
    g.instance_eval(&b)
  end
  alias describe context
  def it(name = nil, *_meta, &b)
    @itn = (@itn || 0) + 1
    run_example(name || "example #{@itn}", b)
  end
  alias specify it
  def xit(name = nil, *_m, &_b)
    Port::UNPORTED << { 'family' => $family, 'mode' => Group.mode_name(@mode),
                        'case' => "#{full_name} #{name}", 'unported' => 'skipped upstream (xit)' }
  end
  def ecs_compatibility? = Example.new(self, '').ecs_compatibility?
  def pattern_mode = @mode
  def it_behaves_like(name, *args)
    raise "unknown shared examples #{name}" unless name == 'top-level namespaces'
    ns, opts = args
    opts ||= {}
    run_example("top-level namespaces #{ns.inspect}", proc {
      if instance_exec(&(opts[:if] || -> { true }))
        s = subject
        raise Port::Unportable, 'namespaces of a non-event' unless s.is_a?(Rec)
        Port.add(s.ctx, { 'op' => 'top_keys_within', 'value' => ns })
      end
    })
  end
  alias include_examples it_behaves_like
  def run_example(name, b)
    ex = Example.new(self, name)
    $example = ex
    begin
      all_hooks.each { |h| ex.instance_exec(&h) }
      ex.instance_exec(&b)
    rescue Port::Unportable, NoMethodError, RuntimeError, TypeError, NotImplementedError => e
      Port::UNPORTED << { 'family' => $family, 'mode' => Group.mode_name(@mode),
                          'case' => "#{full_name} #{name}",
                          'unported' => "#{e.class}: #{e.message[0, 160]}" }
    end
  end
end

def describe_pattern(name, modes = [nil], &b)
  modes.each do |mode|
    g = Group.new(nil, "#{name}#{mode ? " (#{mode})" : ''}", mode)
    # "NAGIOSLOGLINE - CURRENT HOST STATE": the pattern, then what the cases are about
    g.let(:pattern) { name.split(' - ').first }
    g.let(:message) { raise Port::Unportable, 'no message' }
    g.let(:event) { grok_match_event(pattern, message) }
    g.let(:grok) { event.to_hash }
    g.subject(:grok_result) { grok }
    g.instance_eval(&b)
  end
end

def describe(name, *more, &b)
  g = Group.new(nil, name.to_s)
  g.first_arg = name
  g.instance_eval(&b)
end

module RSpec
  def self.describe(*a, &b) = Object.send(:describe, *a, &b)
  def self.shared_examples_for(*) = nil
end

repo, rev, out = ARGV
abort 'usage: port_specs.rb REPO_GIT_DIR REV OUT_DIR' unless out
files, = Open3.capture2('git', '--git-dir', repo, 'ls-tree', '--name-only', rev, 'spec/patterns/')
files.split("\n").grep(/_spec\.rb\z/).sort.each do |f|
  $family = File.basename(f, '_spec.rb')
  src, = Open3.capture2('git', '--git-dir', repo, 'show', "#{rev}:#{f}")
  src = src.gsub(/^require .*$/, '')
  eval(src, binding, f) # rubocop:disable Security/Eval
end

Dir.mkdir(out) unless Dir.exist?(out)
fams = Hash.new { |h, k| h[k] = [] }
names = Hash.new(0) # an example that greps several lines: each gets its own name, " (2)", ...
Port::CASES.each do |(fam, mode, kase, expr, line), checks|
  k = names[[fam, mode, kase]] += 1
  kase = "#{kase} (#{k})" if k > 1
  fams[fam] << { 'mode' => mode, 'case' => kase, 'expr' => expr, 'line' => line, 'checks' => checks }
end
Port::CASES.each_key { |k| fams[k[0]] }
Port::UNPORTED.each { |u| fams[u['family']] << u.reject { |k, _| k == 'family' } }
fams.each do |fam, rows|
  File.write(File.join(out, "#{fam}.ndjson"), rows.map { |r| JSON.generate(r) }.join("\n") + "\n")
end
warn "#{Port::CASES.size} cases, #{Port::UNPORTED.size} unported examples, #{fams.size} families"
