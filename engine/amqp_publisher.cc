#include "engine/amqp_publisher.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "engine/log.h"
#include "storage/file_io.h"

namespace ringmail::engine {
namespace {

constexpr amqp_channel_t kChannel = 1;

std::unique_ptr<AmqpCounters>& counters_mut() {
  static std::unique_ptr<AmqpCounters> c;
  return c;
}

amqp_connection_state_t state(void* p) { return static_cast<amqp_connection_state_t>(p); }

std::string bytes(amqp_bytes_t b) { return {static_cast<const char*>(b.bytes), b.len}; }

// Why an RPC failed, in words.
std::string reply_error(const amqp_rpc_reply_t& r) {
  switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return {};
    case AMQP_RESPONSE_NONE:
      return "no reply";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      return amqp_error_string2(r.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        const auto* m = static_cast<const amqp_connection_close_t*>(r.reply.decoded);
        return "the broker closed the connection: " + std::to_string(m->reply_code) + " " +
               bytes(m->reply_text);
      }
      if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        const auto* m = static_cast<const amqp_channel_close_t*>(r.reply.decoded);
        return "the broker closed the channel: " + std::to_string(m->reply_code) + " " +
               bytes(m->reply_text);
      }
      return "the broker answered method " + std::to_string(r.reply.id);
  }
  return "unknown reply";
}

}  // namespace

const AmqpCounters* amqp_counters() { return counters_mut().get(); }

AmqpPublisher::AmqpPublisher(config::AmqpConfig cfg, std::string events_dir)
    : cfg_(std::move(cfg)),
      dir_(std::move(events_dir)),
      feed_("amqp", dir_ + "/cursor-amqp", cfg_.types, cfg_.batch_size, cfg_.max_backoff_s) {}

AmqpPublisher::~AmqpPublisher() {
  stop();
  join();
  disconnect();
}

Result<void> AmqpPublisher::start() {
  // The shards make the directory too; the cursor may be written first.
  storage::PosixFileIo io;
  if (const int r = io.make_dirs(dir_); r < 0) {
    return Error{"amqp: cannot make " + dir_ + ": " + std::strerror(-r)};
  }
  auto listing = storage::list_event_segments(dir_);
  if (!listing) return Error{"amqp: " + listing.error()};
  feed_.open(*listing);
  counters_mut() = std::make_unique<AmqpCounters>();
  thread_ = std::thread([this] { run(); });
  log_line("amqp: publishing the event log from " + dir_ + " to exchange \"" + cfg_.exchange +
           "\" with routing key \"" + cfg_.routing_key + "\"");
  return {};
}

void AmqpPublisher::stop() {
  {
    std::lock_guard lock(mu_);
    stop_.store(true);
  }
  cv_.notify_all();
}

void AmqpPublisher::join() {
  if (thread_.joinable()) thread_.join();
}

void AmqpPublisher::wait_ms(int64_t ms) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stop_.load(); });
}

bool AmqpPublisher::connect(std::string* why) {
  std::string url = cfg_.url;  // amqp_parse_url points into it
  amqp_connection_info info;
  if (amqp_parse_url(url.data(), &info) != AMQP_STATUS_OK) {
    *why = "cannot parse the url";
    return false;
  }
  amqp_connection_state_t c = amqp_new_connection();
  if (c == nullptr) {
    *why = "out of memory";
    return false;
  }
  conn_ = c;
  amqp_socket_t* sock = amqp_tcp_socket_new(c);
  if (sock == nullptr) {
    *why = "cannot make a socket";
    return false;
  }
  timeval tv{static_cast<time_t>(cfg_.timeout_s), 0};
  amqp_set_handshake_timeout(c, &tv);
  amqp_set_rpc_timeout(c, &tv);
  if (const int st = amqp_socket_open_noblock(sock, info.host, info.port, &tv);
      st != AMQP_STATUS_OK) {
    *why = std::string(info.host) + ":" + std::to_string(info.port) + ": " + amqp_error_string2(st);
    return false;
  }
  amqp_rpc_reply_t r =
      amqp_login(c, info.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, info.user, info.password);
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    *why = "login: " + reply_error(r);
    return false;
  }
  amqp_channel_open(c, kChannel);
  if (r = amqp_get_rpc_reply(c); r.reply_type != AMQP_RESPONSE_NORMAL) {
    *why = "channel.open: " + reply_error(r);
    return false;
  }
  amqp_confirm_select(c, kChannel);
  if (r = amqp_get_rpc_reply(c); r.reply_type != AMQP_RESPONSE_NORMAL) {
    *why = "confirm.select: " + reply_error(r);
    return false;
  }
  next_tag_ = 1;
  return true;
}

void AmqpPublisher::disconnect() {
  if (conn_ == nullptr) return;
  // No close handshake: the connection may be the one that failed.
  amqp_destroy_connection(state(conn_));
  conn_ = nullptr;
}

// Publishes `lines` and waits for the broker to confirm each.
bool AmqpPublisher::publish(const std::vector<std::string>& lines, std::string* why) {
  amqp_connection_state_t c = state(conn_);
  const amqp_bytes_t exchange = amqp_cstring_bytes(cfg_.exchange.c_str());
  const amqp_bytes_t key = amqp_cstring_bytes(cfg_.routing_key.c_str());
  const uint64_t first = next_tag_;
  for (const std::string& line : lines) {
    amqp_basic_properties_t props{};
    props._flags =
        AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
    props.content_type = amqp_cstring_bytes("application/json");
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    const std::string_view id = storage::event_line_id(line);
    props.message_id = {id.size(), const_cast<char*>(id.data())};
    const amqp_bytes_t body{line.size(), const_cast<char*>(line.data())};
    if (const int st = amqp_basic_publish(c, kChannel, exchange, key, 0, 0, &props, body);
        st != AMQP_STATUS_OK) {
      *why = std::string("publish: ") + amqp_error_string2(st);
      return false;
    }
    ++next_tag_;
  }
  // The confirms: basic.ack of one tag, or of every tag up to one
  // (multiple); the broker may confirm out of order.
  std::vector<bool> acked(next_tag_ - first, false);
  size_t left = acked.size();
  const int64_t deadline = steady_now_ms() + int64_t{cfg_.timeout_s} * 1000;
  while (left > 0) {
    amqp_maybe_release_buffers(c);
    const int64_t wait = deadline - steady_now_ms();
    if (wait <= 0) {
      *why = "no confirm within " + std::to_string(cfg_.timeout_s) + " s";
      return false;
    }
    timeval tv{static_cast<time_t>(wait / 1000), static_cast<suseconds_t>(wait % 1000 * 1000)};
    amqp_frame_t f;
    if (const int st = amqp_simple_wait_frame_noblock(c, &f, &tv); st != AMQP_STATUS_OK) {
      *why = st == AMQP_STATUS_TIMEOUT
                 ? "no confirm within " + std::to_string(cfg_.timeout_s) + " s"
                 : std::string("waiting for confirms: ") + amqp_error_string2(st);
      return false;
    }
    if (f.frame_type != AMQP_FRAME_METHOD) continue;
    const amqp_method_number_t m = f.payload.method.id;
    if (m == AMQP_BASIC_ACK_METHOD) {
      const auto* a = static_cast<const amqp_basic_ack_t*>(f.payload.method.decoded);
      const uint64_t lo = a->multiple ? first : a->delivery_tag;
      for (uint64_t t = std::max(lo, first); t <= a->delivery_tag && t < next_tag_; ++t) {
        if (!acked[t - first]) {
          acked[t - first] = true;
          --left;
        }
      }
    } else if (m == AMQP_BASIC_NACK_METHOD) {
      *why = "the broker refused a message (basic.nack)";
      return false;
    } else if (m == AMQP_CHANNEL_CLOSE_METHOD || m == AMQP_CONNECTION_CLOSE_METHOD) {
      amqp_rpc_reply_t r{};
      r.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION;
      r.reply = f.payload.method;
      *why = reply_error(r);
      return false;
    }
  }
  return true;
}

void AmqpPublisher::run() {
  AmqpCounters& counters = *counters_mut();
  EventListing listing;
  int64_t listed_ms = -1;
  std::vector<std::string> batch;  // waiting for its confirms: sent again unchanged
  bool down = false;
  while (!stop_.load()) {
    int64_t now = steady_now_ms();
    feed_.flush(now, false);
    if (batch.empty()) {
      if (!feed_.list(dir_, now, &listing, &listed_ms) || !feed_.next_batch(listing, &batch)) {
        batch.clear();
        feed_.flush(now, false);
        wait_ms(kEventPollMs);
        continue;
      }
    }
    std::string why;
    if ((conn_ != nullptr || connect(&why)) && publish(batch, &why)) {
      feed_.acked(steady_now_ms());
      feed_.succeeded();
      counters.events_sent.fetch_add(batch.size(), std::memory_order_relaxed);
      batch.clear();
      if (down) {
        down = false;
        counters.up.store(true, std::memory_order_relaxed);
        log_line("amqp: back up (the broker confirmed a batch)");
      }
      continue;
    }
    disconnect();
    counters.failures.fetch_add(1, std::memory_order_relaxed);
    const uint32_t backoff_s = feed_.failed();
    if (!down) {
      down = true;
      counters.up.store(false, std::memory_order_relaxed);
      log_line("amqp: down: " + why + "; retrying the batch of " + std::to_string(batch.size()) +
                   " events with backoff up to " + std::to_string(cfg_.max_backoff_s) + " s",
               LogLevel::kWarning);
    }
    wait_ms(int64_t{backoff_s} * 1000);
  }
  feed_.flush(steady_now_ms(), true);
  disconnect();
  log_line("amqp: stopped");
}

}  // namespace ringmail::engine
