# Pushes one job with Sidekiq's own client (Debian's ruby-sidekiq 6.4) per line read on stdin, and prints the
# wall-clock time (seconds since the epoch) taken just before the push. Used by benches/events.rs.
require 'sidekiq'

Sidekiq.configure_client { |c| c.redis = { url: ENV.fetch('REDIS_URL') } }
$stdout.sync = true
Sidekiq.redis(&:ping) # connect before the first timed push
n = 0
while $stdin.gets
  t = Process.clock_gettime(Process::CLOCK_REALTIME)
  Sidekiq::Client.push('class' => 'HardWorker', 'queue' => 'default', 'args' => [n])
  n += 1
  puts format('%.6f', t)
end
