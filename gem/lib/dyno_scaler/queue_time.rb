# frozen_string_literal: true

require "dyno_scaler/version"
require "dyno_scaler/redis_connection"

module DynoScaler
  # A Rack middleware that measures each request's queue time (from the router's `X-Request-Start` to the moment a
  # thread of this app takes it) and keeps per-second aggregates of it in the app's Redis, where dyno-scaler's
  # `request_queue` source reads them to scale the `web` dynos.
  #
  #   # config.ru (Rails apps get it from the Railtie)
  #   require "dyno_scaler/queue_time"
  #   use DynoScaler::QueueTime
  #
  # Nothing is sent on the request path: each request adds to an in-memory bucket of its second; a thread of each
  # process writes the buckets to Redis once a second (one Lua call). When Redis is slow or down, requests are not
  # slowed and never fail: the thread drops what it cannot write (buckets older than a minute) and tries again.
  class QueueTime
    # Histogram bucket upper bounds in milliseconds; the last bucket holds everything slower. The daemon reads the
    # same bounds (`dyno_scaler_request_queue::BOUNDS_MS`).
    BOUNDS_MS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500].freeze
    # Fields of a bucket, in the order the flush script takes them.
    FIELDS = %w[reqs n sum max app dropped].freeze
    # 2000-01-01 in milliseconds: a value above it × 10⁶ is in nanoseconds, × 10³ microseconds, above it
    # milliseconds, else seconds (nginx's `t=1700000000.123`).
    CUTOFF_MS = 946_684_800_000.0
    # A queue time longer than this is a wrong clock or a wrong header, not a queue: dropped (and counted).
    ABSURD_MS = 3_600_000.0

    FLUSH = <<~LUA
      local ttl = tonumber(ARGV[1])
      redis.call('SET', KEYS[1], ARGV[2], 'EX', 30)
      local per = #{FIELDS.size + BOUNDS_MS.size + 1}
      for i = 2, #KEYS do
        local key = KEYS[i]
        local b = 2 + (i - 2) * per
        redis.call('HINCRBY', key, 'reqs', ARGV[b + 1])
        redis.call('HINCRBY', key, 'n', ARGV[b + 2])
        redis.call('HINCRBY', key, 'sum', ARGV[b + 3])
        local m = tonumber(ARGV[b + 4])
        local old = tonumber(redis.call('HGET', key, 'max') or '0')
        if m > old then redis.call('HSET', key, 'max', m) end
        redis.call('HINCRBY', key, 'app', ARGV[b + 5])
        redis.call('HINCRBY', key, 'dropped', ARGV[b + 6])
        for j = 0, #{BOUNDS_MS.size} do
          local v = ARGV[b + 7 + j]
          if v ~= '0' then redis.call('HINCRBY', key, 'h' .. j, v) end
        end
        redis.call('EXPIRE', key, ttl)
      end
      return #KEYS - 1
    LUA

    attr_reader :key_prefix

    # Options:
    # - `redis_url:` the Redis to write to (`REDIS_URL` by default; `redis://` or `rediss://`, with
    #   `DYNO_SCALER_REDIS_TLS_VERIFY=none` for Heroku Redis's self-signed certificate, as for the daemon)
    # - `process_type:` the name the measurements are kept under (`web`; the daemon's `middleware_type`)
    # - `namespace:` a key prefix, as the daemon's `namespace` setting (none by default)
    # - `max_body_bytes:` requests with a larger body keep their count but not their queue time (100_000)
    # - `flush_interval:` seconds between writes (1.0); `ttl:` seconds the keys live (120)
    # No `DYNO_SCALER_*` variable of the daemon's is read for these: on Heroku the config vars are the app's, and
    # the daemon's `DYNO_SCALER_PROCESS_TYPE` may well name a worker type.
    def initialize(app, redis_url: nil, process_type: "web", namespace: nil, max_body_bytes: 100_000,
                   flush_interval: 1.0, ttl: 120)
      @app = app
      @redis_url = redis_url || ENV["REDIS_URL"]
      @key_prefix = "#{namespace.to_s.empty? ? "" : "#{namespace}:"}dyno-scaler:rq:#{process_type}:"
      @max_body_bytes = max_body_bytes
      @flush_interval = flush_interval
      @ttl = ttl
      @lock = Mutex.new
      @buckets = {}
      @pid = nil
    end

    def call(env)
      arrived = Process.clock_gettime(Process::CLOCK_REALTIME, :float_millisecond)
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC, :float_millisecond)
      queue_ms = queue_time(env, arrived)
      begin
        @app.call(env)
      ensure
        app_ms = Process.clock_gettime(Process::CLOCK_MONOTONIC, :float_millisecond) - started
        record((arrived / 1000).floor, queue_ms, app_ms)
      end
    end

    # The request's queue time in milliseconds: `:none` without a header (or one that is not measured), `:dropped`
    # for a negative or absurd value (a skewed clock, a header in another unit), else the time.
    def queue_time(env, now_ms)
      raw = env["HTTP_X_REQUEST_START"]
      return :none if raw.nil? || raw.empty?
      return :none if env["HTTP_UPGRADE"].to_s.casecmp?("websocket")
      return :none if env["CONTENT_LENGTH"].to_i > @max_body_bytes

      start = raw.delete("^0-9.").to_f
      start_ms =
        if start > CUTOFF_MS * 1_000_000 then start / 1_000_000
        elsif start > CUTOFF_MS * 1_000 then start / 1_000
        elsif start > CUTOFF_MS then start
        else start * 1_000
        end
      # The time the body took to arrive is the client's network, not a queue (Puma measures it).
      ms = now_ms - start_ms - env["puma.request_body_wait"].to_f
      return :dropped if ms.negative? || ms > ABSURD_MS || start_ms < CUTOFF_MS

      ms
    end

    # What is waiting to be written: {second => [reqs, n, sum_us, max_us, app_us, dropped, h0..h11]}.
    def pending
      @lock.synchronize { @buckets.transform_values(&:dup) }
    end

    # Writes the buckets to Redis (the flush thread calls it every `flush_interval`); false when Redis failed.
    def flush
      taken = @lock.synchronize do
        b = @buckets
        @buckets = {}
        b
      end
      # The `alive` key says that a process with this middleware runs (no request in a window is then no traffic,
      # not a missing middleware).
      alive = "#{@key_prefix}alive"
      now = Process.clock_gettime(Process::CLOCK_REALTIME).floor
      if taken.empty?
        connection.call("SET", alive, now, "EX", 30)
        return true
      end

      keys = [alive] + taken.keys.map { |s| "#{@key_prefix}#{s}" }
      args = [@ttl, now] + taken.values.flatten
      connection.call("EVAL", FLUSH, keys.size, *keys, *args)
      true
    rescue StandardError => e
      warn_once(e)
      @connection&.close
      @connection = nil
      # Put back what is still recent; older buckets are dropped (the daemon reads the last few seconds only).
      keep_after = (Process.clock_gettime(Process::CLOCK_REALTIME) - 60).floor
      @lock.synchronize do
        taken.each { |s, v| merge(@buckets, s, v) if s > keep_after }
      end
      false
    end

    private

    def record(second, queue_ms, app_ms)
      ensure_flusher
      row = Array.new(FIELDS.size + BOUNDS_MS.size + 1, 0)
      row[0] = 1
      row[4] = (app_ms * 1000).round
      case queue_ms
      when :none then nil
      when :dropped then row[5] = 1
      else
        us = (queue_ms * 1000).round
        row[1] = 1
        row[2] = us
        row[3] = us
        row[FIELDS.size + (BOUNDS_MS.index { |b| queue_ms <= b } || BOUNDS_MS.size)] = 1
      end
      @lock.synchronize { merge(@buckets, second, row) }
    rescue StandardError
      nil # never fail a request for a measurement
    end

    def merge(buckets, second, row)
      into = buckets[second]
      if into.nil?
        buckets[second] = row
        return
      end
      row.each_with_index do |v, i|
        into[i] = i == 3 ? [into[i], v].max : into[i] + v
      end
    end

    # One flush thread per process, started by the first request in each (a forked Puma worker starts its own).
    def ensure_flusher
      return if @pid == Process.pid

      @lock.synchronize do
        return if @pid == Process.pid

        @pid = Process.pid
        @buckets = {}
        @connection = nil
        interval = @flush_interval
        thread = Thread.new do
          loop do
            sleep interval
            flush
          end
        end
        thread.name = "dyno-scaler queue time" if thread.respond_to?(:name=)
        thread[:fork_safe] = true
      end
    end

    def connection
      @connection ||= RedisConnection.new(@redis_url)
    end

    def warn_once(error)
      now = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      return if @warned_at && now - @warned_at < 60

      @warned_at = now
      Kernel.warn("dyno-scaler queue time: cannot write to Redis (#{error.class}: #{RedisConnection.scrub(error.message)}); " \
                  "requests go on, the measurements of that time are dropped")
    end
  end
end

require "dyno_scaler/railtie" if defined?(Rails::Railtie)
