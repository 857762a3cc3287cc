# The cost of DynoScaler::QueueTime per request: the same Rack app called with and without the middleware, in one
# process, alternating, each call timed; its flush thread writing to a real Redis once a second meanwhile. Prints
# p50 and p99 of each and their difference.
#
#   ruby -Igem/lib benches/queue_time.rb [REDIS_URL] [CALLS]      (default redis://127.0.0.1:6379, 200000)
require "dyno_scaler/queue_time"

url = ARGV[0] || "redis://127.0.0.1:6379"
calls = (ARGV[1] || 200_000).to_i
app = ->(_env) { [200, { "content-type" => "text/plain" }, ["ok"]] }
wrapped = DynoScaler::QueueTime.new(app, redis_url: url, namespace: "bench#{Process.pid}")
clock = -> { Process.clock_gettime(Process::CLOCK_MONOTONIC, :float_microsecond) }
env = lambda do
  { "REQUEST_METHOD" => "GET", "PATH_INFO" => "/", "HTTP_X_REQUEST_START" => (Time.now.to_f * 1000).floor.to_s }
end
bare_t = []
with_t = []
# Warm up both paths (and start the flush thread).
2000.times { app.call(env.call); wrapped.call(env.call) }
calls.times do
  e = env.call
  t = clock.call
  app.call(e)
  bare_t << clock.call - t
  e = env.call
  t = clock.call
  wrapped.call(e)
  with_t << clock.call - t
end
pct = ->(a, p) { a.sort[(a.size * p).floor.clamp(0, a.size - 1)] }
b50, b99 = pct.(bare_t, 0.50), pct.(bare_t, 0.99)
w50, w99 = pct.(with_t, 0.50), pct.(with_t, 0.99)
puts format("calls %d each, ruby %s", calls, RUBY_VERSION)
puts format("without: p50 %.2f µs, p99 %.2f µs", b50, b99)
puts format("with:    p50 %.2f µs, p99 %.2f µs", w50, w99)
puts format("cost:    p50 %.2f µs, p99 %.2f µs", w50 - b50, w99 - b99)
sleep 1.5
puts format("flushed: %s", wrapped.flush ? "yes" : "no (Redis unreachable)")
