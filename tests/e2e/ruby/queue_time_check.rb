# Run by tests/e2e/web.rs with the gem installed in an empty GEM_HOME: the middleware's reading of X-Request-Start in
# each sender's unit, what it drops, what it skips, and the Railtie that inserts it. Prints one line per check; exits
# 1 on the first that fails.
require "dyno_scaler/queue_time"

def check(name, got, want)
  ok = want.is_a?(Range) ? want.cover?(got) : got == want
  puts "#{ok ? "ok" : "FAILED"} #{name}: #{got.inspect} (want #{want.inspect})"
  exit 1 unless ok
end

m = DynoScaler::QueueTime.new(->(_) { [200, {}, []] }, redis_url: "redis://127.0.0.1:1")
now = 1_765_000_000_123.0 # ms
at = ->(header, extra = {}) { m.queue_time({ "HTTP_X_REQUEST_START" => header }.merge(extra), now) }
check "Heroku's integer milliseconds", at.("1765000000100"), 23.0
check "nginx t= seconds with 3 decimals", at.("t=1765000000.100"), (22.9..23.1)
check "Thruster t= milliseconds", at.("t=1765000000100"), 23.0
check "microseconds", at.("t=1765000000100000"), 23.0
check "nanoseconds", at.("1765000000100000000"), 23.0
check "a negative value (a skewed clock) is dropped, not clamped", at.("1765000000200"), :dropped
check "a value over an hour is dropped", at.("1764990000000"), :dropped
check "garbage is dropped", at.("12"), :dropped
check "no header", m.queue_time({}, now), :none
check "Puma's body wait is the client's network", at.("1765000000100", "puma.request_body_wait" => 20), (2.9..3.1)
check "a large body keeps no queue time", at.("1765000000100", "CONTENT_LENGTH" => "200000"), :none
check "a WebSocket upgrade keeps no queue time", at.("1765000000100", "HTTP_UPGRADE" => "websocket"), :none

# The request path with Redis unreachable: the app's answer, untouched; the measurement waits in memory.
status, = m.call({ "HTTP_X_REQUEST_START" => ((Time.now.to_f * 1000).floor - 5).to_s })
check "a request with Redis unreachable", status, 200
check "the flush fails without raising", m.flush, false
check "what failed is kept for a minute", m.pending.values.sum { |row| row[0] }, 1

# The Railtie: in a Rails app the middleware is the first of the stack.
require "rails"
require "action_controller/railtie"
require "dyno_scaler/railtie"
class CheckApp < Rails::Application
  config.eager_load = false
  config.logger = Logger.new(nil)
  config.secret_key_base = "x" * 64
end
CheckApp.initialize!
check "the Railtie puts it first", CheckApp.middleware.first.klass, DynoScaler::QueueTime
puts "all checks passed"
