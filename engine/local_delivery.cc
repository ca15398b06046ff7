#include "engine/local_delivery.h"

#include <algorithm>
#include <cstring>
#include <ctime>

#include "engine/log.h"
#include "engine/pipe.h"
#include "engine/shard.h"
#include "proto/replies.h"

namespace ringmail::engine {

LocalDelivery::LocalDelivery(Shard& shard)
    : shard_(shard),
      maildir_(
          shard.file_io(), shard.spool(), shard.config().data_dir, shard.config().hostname,
          shard.config().maildir_sync_batch ? storage::MaildirDelivery::SyncMode::kBatch
                                            : storage::MaildirDelivery::SyncMode::kPerFile,
          [&shard](const std::string& domain) { return shard.policy().is_local_domain(domain); }) {}

LocalDelivery::~LocalDelivery() {
  for (DeliveryJob* j : queue_) delete j;
  for (DeliveryJob* j : retrying_) delete j;  // still in the spool for the next start
}

int LocalDelivery::wait_ms() const {
  return maildir_.sync_pending() || deferred_ ? 5 : pipes_inflight_ > 0 ? 20 : 1000;
}

void LocalDelivery::service() {
  if (pipes_inflight_ > 0) pipes_inflight_ -= static_cast<size_t>(pipe_pool_->drain());
  if (deferred_) start_deliveries();
  shard_.counters().local_queued.store(queue_.size() + inflight_ + retrying_.size(),
                                       std::memory_order_relaxed);
  if (!maildir_.sync_pending()) {
    sync_wait_since_ms_ = 0;
    return;
  }
  const int64_t now_ms = shard_.mono_ms();
  if (sync_wait_since_ms_ == 0) sync_wait_since_ms_ = now_ms;
  // Acknowledging mail goes first: a delivery syncfs starts when the spool
  // has no sync running, or when the batch has waited long enough anyway.
  if (shard_.spool().idle() || shard_.stopping() ||
      now_ms - sync_wait_since_ms_ >= shard_.config().delivery_sync_delay_ms) {
    maildir_.flush();
    sync_wait_since_ms_ = 0;
  }
}

void LocalDelivery::deliver(DeliveryJob* job) {
  job->owner = this;
  const config::Config& cfg = shard_.config();
  OutboundQueue* outbound = shard_.outbound();
  // Nothing for the local mailboxes: straight to the outbound queue.
  if (outbound != nullptr && !shard_.stopping()) {
    std::vector<size_t> remote;
    bool any_local = false;
    const auto& rcpts = job->rec.env.rcpts;
    for (size_t i = 0; i < rcpts.size(); ++i) {
      if (i < job->rec.rcpt_done.size() && job->rec.rcpt_done[i] != 0) continue;
      if (shard_.policy().is_local_domain(proto::ascii_lower(rcpts[i].domain))) {
        any_local = true;
        break;
      }
      remote.push_back(i);
    }
    if (!any_local && !remote.empty()) {
      log_line(job->rec.env.id + ": for outbound delivery (" + std::to_string(remote.size()) +
               " recipients)" + log_meta(job->rec.env));
      outbound->add(std::move(job->rec), std::move(remote), shard_.clock_s());
      delete job;
      return;
    }
  }
  // A retry already waited; only a first attempt is deferred behind a burst.
  job->queued_ms = job->attempts == 0 ? shard_.mono_ms() : 0;
  job->done = &LocalDelivery::on_delivered;
  const size_t bytes = job->rec.message.size();
  if (queued_bytes_ + bytes > cfg.delivery_backlog_bytes_max) {
    std::string().swap(job->rec.message);  // read back from the spool later
  } else {
    queued_bytes_ += bytes;
  }
  queue_.push_back(job);
  start_deliveries();
}

void LocalDelivery::retry_later(DeliveryJob* job) {
  retrying_.insert(job);
  job->retry.job = job;
  job->retry.fire = [](TimerEntry* t) {
    DeliveryJob* dj = static_cast<DeliveryJob::Retry*>(t)->job;
    dj->owner->retrying_.erase(dj);
    dj->owner->deliver(dj);
  };
  shard_.wheel().schedule(&job->retry, shard_.clock_s() + shard_.config().delivery_retry_s);
}

void LocalDelivery::start_deliveries() {
  const config::Config& cfg = shard_.config();
  const int64_t now = shard_.mono_ms();
  const bool accepting = shard_.accepting_mail(now);
  deferred_ = false;
  // While stopping, queued deliveries stay in the spool for the next start.
  while (!shard_.stopping() && !queue_.empty() && inflight_ < cfg.delivery_concurrency) {
    DeliveryJob* job = queue_.front();
    if (accepting && now - job->queued_ms < cfg.delivery_defer_ms) {
      deferred_ = true;  // the loop comes back within a few ms
      break;
    }
    queue_.pop_front();
    if (job->rec.message.empty()) {
      if (int r = shard_.spool().load(job->rec); r < 0) {
        log_line(job->rec.env.id + ": cannot read the message back from the spool (" +
                 std::strerror(-r) + "), retry in " + std::to_string(cfg.delivery_retry_s) + "s");
        retry_later(job);
        continue;
      }
    } else {
      queued_bytes_ -= job->rec.message.size();
    }
    ++inflight_;
    if (start_pipes(job)) continue;  // the Maildirs after the commands
    maildir_.deliver(job);
  }
}

// The pipe-alias recipients of one delivery job and what their commands did.
struct PipeOp : storage::BlockingOp {
  struct Rcpt {
    size_t index;
    std::vector<std::string> commands;  // pipe aliases, or the domain's MDA
    std::string lmtp_socket;            // or the domain's LMTP server
    const char* via = "pipe";           // for the log: pipe, mda, lmtp
    proto::DeliveryResult outcome{proto::Outcome::kOk, ""};
  };
  DeliveryJob* job = nullptr;
  std::vector<Rcpt> rcpts;
  int timeout_s = 0;
  std::string hostname;  // LHLO
  struct Done final : Completion {
    PipeOp* op = nullptr;
    void complete(const Event&) override { op->done(op, 0); }
  } wake;
};

namespace {

int run_pipes(storage::BlockingOp* o) {
  auto* op = static_cast<PipeOp*>(o);
  const proto::Envelope& env = op->job->rec.env;
  for (auto& r : op->rcpts) {
    const proto::Address& a = env.rcpts[r.index];
    if (!r.lmtp_socket.empty()) {
      r.outcome = lmtp_deliver(r.lmtp_socket, op->hostname, env.from.to_string(), a.to_string(),
                               op->job->rec.message, op->timeout_s);
      continue;
    }
    // LF line endings, and the trace fields a Maildir copy gets.
    std::string text = storage::MaildirDelivery::render(env, r.index, op->job->rec.message);
    const std::vector<std::pair<std::string, std::string>> vars = {{"SENDER", env.from.to_string()},
                                                                   {"RECIPIENT", a.to_string()},
                                                                   {"USER", a.local},
                                                                   {"DOMAIN", a.domain},
                                                                   {"QUEUE_ID", env.id}};
    for (const auto& cmd : r.commands) {
      r.outcome = run_pipe(cmd, text, vars, op->timeout_s);
      if (r.outcome.outcome != proto::Outcome::kOk) break;
    }
  }
  return 0;
}

}  // namespace

void LocalDelivery::after_pipes(PipeOp* o) {
  std::unique_ptr<PipeOp> op(o);
  DeliveryJob* job = op->job;
  const auto& env = job->rec.env;
  bool again = false;
  if (job->rec.rcpt_done.size() < env.rcpts.size()) job->rec.rcpt_done.resize(env.rcpts.size(), 0);
  for (const auto& r : op->rcpts) {
    const std::string to = log_recipient(env, r.index) + " relay=" + r.via;
    if (Events* ev = shard_.events()) {
      const Events::Type type = r.outcome.outcome == proto::Outcome::kOk ? Events::Type::kDelivery
                                : r.outcome.outcome == proto::Outcome::kPerm
                                    ? Events::Type::kBounce
                                    : Events::Type::kTransientFailure;
      Events::Detail d;
      d.size = job->rec.length;
      d.attempt = job->attempts + 1;
      d.peer_name = r.via;
      d.reply = r.outcome.reply;
      ev->record(type, env, r.index, d, shard_.clock_s());
    }
    switch (r.outcome.outcome) {
      case proto::Outcome::kOk:
        log_line(env.id + ":" + to + " status=delivered");
        job->rec.rcpt_done[r.index] = 1;
        shard_.spool().recipient_done(job->rec, r.index, false);
        break;
      case proto::Outcome::kTemp:
        log_line(env.id + ":" + to + " status=deferred (" + r.outcome.reply + ")");
        shard_.counters().local_deferred.fetch_add(1, std::memory_order_relaxed);
        again = true;
        break;
      case proto::Outcome::kPerm: {
        log_line(env.id + ":" + to + " status=bounced (" + r.outcome.reply + ")");
        shard_.counters().local_failed.fetch_add(1, std::memory_order_relaxed);
        job->rec.rcpt_done[r.index] = 1;
        OutboundQueue::Bounce b;
        b.rec = job->rec;
        b.failed.push_back({r.index, proto::SmtpClient::RcptResult{
                                         proto::Outcome::kPerm,
                                         proto::reply::local_delivery_failed(r.outcome.reply)}});
        b.remote_host = shard_.config().hostname;
        if (!env.from.is_null()) shard_.queue_dsn(std::move(b), [](bool) {});
        shard_.spool().recipient_done(job->rec, r.index, true);
        break;
      }
    }
  }
  if (again) {
    --inflight_;
    if (shard_.stopping()) {
      delete job;  // stays in the spool; recovered at the next start
    } else {
      retry_later(job);
    }
    start_deliveries();
    return;
  }
  maildir_.deliver(job);
}

bool LocalDelivery::start_pipes(DeliveryJob* job) {
  const storage::Domains* domains = shard_.policy().domains();
  if (domains == nullptr) return false;
  auto op = std::make_unique<PipeOp>();
  const auto& rcpts = job->rec.env.rcpts;
  for (size_t i = 0; i < rcpts.size(); ++i) {
    if (i < job->rec.rcpt_done.size() && job->rec.rcpt_done[i] != 0) continue;
    const std::string domain = proto::ascii_lower(rcpts[i].domain);
    if (!domains->is_local_domain(domain)) continue;
    const proto::Resolution r = domains->resolve(rcpts[i].local, domain);
    PipeOp::Rcpt pr{i, {}, {}, "pipe", {}};
    for (const auto& d : r.destinations) {
      // Stored for its alias: "<alias>@<domain>" is the pipe itself.
      if (d.kind == proto::Destination::Kind::kPipe &&
          proto::iequals(d.address, rcpts[i].to_string())) {
        pr.commands.push_back(d.command);
      }
    }
    // A mailbox of a domain whose mail goes to an MDA or an LMTP server.
    const storage::DomainDelivery& dd = domains->delivery(domain);
    if (pr.commands.empty() && dd.kind == storage::DomainDelivery::Kind::kMda) {
      pr.commands.push_back(dd.mda);
      pr.via = "mda";
    }
    if (pr.commands.empty() && dd.kind == storage::DomainDelivery::Kind::kLmtp) {
      pr.lmtp_socket = dd.lmtp_socket;
      pr.via = "lmtp";
    }
    if (!pr.commands.empty() || !pr.lmtp_socket.empty()) op->rcpts.push_back(std::move(pr));
  }
  if (op->rcpts.empty()) return false;
  if (!pipe_pool_) pipe_pool_ = std::make_unique<BlockingPool>(2);
  op->job = job;
  op->timeout_s = static_cast<int>(shard_.config().pipe_timeout_s);
  op->hostname = shard_.config().hostname;
  op->kind = storage::BlockingOp::Kind::kCall;
  op->work = &run_pipes;
  op->done = [](storage::BlockingOp* o, int) {
    auto* op = static_cast<PipeOp*>(o);
    op->job->owner->after_pipes(op);
  };
  op->wake.op = op.get();
  ++pipes_inflight_;
  pipe_pool_->submit(op.get(), &op->wake);
  op.release();
  return true;
}

void LocalDelivery::on_delivered(storage::MaildirDelivery::Job* j,
                                 const proto::DeliveryResult& result) {
  auto* job = static_cast<DeliveryJob*>(j);
  LocalDelivery* self = job->owner;
  Shard& shard = self->shard_;
  --self->inflight_;
  self->start_deliveries();
  ++job->attempts;
  const auto& env = job->rec.env;
  Events* events = shard.events();
  const int64_t now = shard.clock_s();
  for (const auto& r : job->skipped) {
    log_line(env.id + ":" + log_recipient(env, r) + " status=bounced (not a valid mailbox)");
    shard.counters().local_failed.fetch_add(1, std::memory_order_relaxed);
    if (events) {
      Events::Detail d;
      d.attempt = job->attempts;
      d.peer_name = "maildir";
      d.reply = "550 5.1.1 not a valid mailbox";
      events->record(Events::Type::kBounce, env, r, d, now);
    }
  }
  // An event for each recipient this Maildir delivery was for: local, not
  // done before (by a pipe), not skipped.
  const auto maildir_events = [&](Events::Type type, std::string_view reply) {
    if (!events) return;
    for (size_t i = 0; i < env.rcpts.size(); ++i) {
      if (i < job->rec.rcpt_done.size() && job->rec.rcpt_done[i] != 0) continue;
      if (!shard.policy().is_local_domain(proto::ascii_lower(env.rcpts[i].domain))) continue;
      const std::string rcpt = env.rcpts[i].to_string();
      if (std::find(job->skipped.begin(), job->skipped.end(), rcpt) != job->skipped.end()) continue;
      Events::Detail d;
      d.size = job->rec.length;
      d.attempt = job->attempts;
      d.peer_name = "maildir";
      d.reply = reply;
      events->record(type, env, rcpt, d, now);
    }
  };
  if (result.outcome != proto::Outcome::kOk) {
    shard.counters().local_deferred.fetch_add(1, std::memory_order_relaxed);
    maildir_events(Events::Type::kTransientFailure, result.reply);
    log_line(env.id + ":" + log_meta(env) + " local delivery deferred (" + result.reply +
             "), retry in " + std::to_string(shard.config().delivery_retry_s) + "s");
    if (shard.stopping()) {
      delete job;  // stays in the spool; recovered at the next start
      return;
    }
    self->retry_later(job);
    return;
  }
  maildir_events(Events::Type::kDelivery, "250 2.0.0 delivered to the Maildir");
  if (!job->remote.empty()) {
    // The local recipients are delivered; the others go to the outbound queue.
    std::vector<size_t> remote;
    for (size_t i = 0; i < env.rcpts.size(); ++i) {
      if (i < job->rec.rcpt_done.size() && job->rec.rcpt_done[i] != 0) continue;
      if (shard.policy().is_local_domain(proto::ascii_lower(env.rcpts[i].domain))) {
        shard.spool().recipient_done(job->rec, i, false);
        continue;
      }
      remote.push_back(i);
    }
    std::string to;
    for (const auto& r : job->remote) to += (to.empty() ? "<" : ", <") + r + ">";
    if (shard.outbound() != nullptr && !shard.stopping()) {
      log_line(env.id + ": for outbound delivery to " + to + log_meta(env));
      shard.outbound()->add(std::move(job->rec), std::move(remote), shard.clock_s());
    } else {
      log_line(env.id + ": for outbound delivery to " + to + " (not now: it stays in the spool)");
    }
    delete job;
    return;
  }
  shard.counters().messages_delivered.fetch_add(1, std::memory_order_relaxed);
  log_line(env.id + ": delivered rcpts=" + std::to_string(env.rcpts.size()) + " maildir" +
           log_meta(env));
  delete job;
}

}  // namespace ringmail::engine
