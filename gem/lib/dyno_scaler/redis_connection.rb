# frozen_string_literal: true

require "io/wait"
require "socket"
require "uri"

module DynoScaler
  # The few Redis commands the queue-time middleware sends, over one connection of its own (RESP2, `redis://` and
  # `rediss://`), so the gem needs no Redis client of the app's. Short timeouts: it runs on the flush thread only.
  class RedisConnection
    CONNECT_TIMEOUT = 0.5
    READ_TIMEOUT = 1.0

    class Error < StandardError; end

    # `message` with any URL's password removed.
    def self.scrub(message)
      message.to_s.gsub(%r{(rediss?://[^:@/\s]*:)[^@\s]*@}, '\1[redacted]@')
    end

    def initialize(url)
      raise Error, "no Redis URL: set REDIS_URL (or DYNO_SCALER_REDIS_URL)" if url.nil? || url.empty?

      uri = URI.parse(url)
      raise Error, "not a redis:// or rediss:// URL" unless %w[redis rediss].include?(uri.scheme)

      @host = uri.host || "127.0.0.1"
      @port = uri.port || 6379
      @tls = uri.scheme == "rediss"
      @user = uri.user && URI.decode_www_form_component(uri.user)
      @password = uri.password && URI.decode_www_form_component(uri.password)
      @db = uri.path.to_s.delete("/").to_i
      @socket = nil
    rescue URI::InvalidURIError
      raise Error, "the Redis URL cannot be parsed"
    end

    # Sends one command and reads its reply (an error reply raises).
    def call(*args)
      open_socket if @socket.nil?
      write(args)
      read_reply
    rescue StandardError
      close
      raise
    end

    def close
      @socket&.close
    rescue StandardError
      nil
    ensure
      @socket = nil
    end

    private

    def open_socket
      tcp = Socket.tcp(@host, @port, connect_timeout: CONNECT_TIMEOUT)
      tcp.setsockopt(Socket::IPPROTO_TCP, Socket::TCP_NODELAY, 1)
      @socket =
        if @tls
          require "openssl"
          ctx = OpenSSL::SSL::SSLContext.new
          # Heroku Redis presents a self-signed certificate: DYNO_SCALER_REDIS_TLS_VERIFY=none, as for the daemon.
          verify = ENV.fetch("DYNO_SCALER_REDIS_TLS_VERIFY", "full") != "none"
          ctx.set_params(verify_mode: verify ? OpenSSL::SSL::VERIFY_PEER : OpenSSL::SSL::VERIFY_NONE)
          ssl = OpenSSL::SSL::SSLSocket.new(tcp, ctx)
          ssl.hostname = @host
          ssl.sync_close = true
          ssl.connect
          ssl
        else
          tcp
        end
      auth = @user && !@user.empty? ? ["AUTH", @user, @password.to_s] : (@password && ["AUTH", @password])
      if auth
        write(auth)
        read_reply
      end
      return if @db.zero?

      write(["SELECT", @db])
      read_reply
    end

    def write(args)
      out = +"*#{args.size}\r\n"
      args.each do |a|
        s = a.to_s
        out << "$#{s.bytesize}\r\n" << s << "\r\n"
      end
      @socket.write(out)
    end

    def read_line
      line = +""
      loop do
        raise Error, "Redis did not answer within #{READ_TIMEOUT}s" unless ready?

        chunk = @socket.read_nonblock(1, exception: false)
        next if chunk == :wait_readable
        raise Error, "Redis closed the connection" if chunk.nil?

        line << chunk
        return line.chomp("\r\n") if line.end_with?("\r\n")
      end
    end

    def ready?
      return true if @socket.respond_to?(:pending) && @socket.pending.positive?

      @socket.to_io.wait_readable(READ_TIMEOUT)
    end

    def read_reply
      line = read_line
      case line[0]
      when "+" then line[1..]
      when "-" then raise Error, "Redis answered #{line[1..]}"
      when ":" then line[1..].to_i
      when "$"
        n = line[1..].to_i
        return nil if n.negative?

        data = +""
        data << read_line << "\r\n" while data.bytesize < n
        data.byteslice(0, n)
      when "*"
        n = line[1..].to_i
        n.negative? ? nil : Array.new(n) { read_reply }
      else raise Error, "an unexpected reply from Redis"
      end
    end
  end
end
