// Work spread over every shard and brought back to one (the admin API's
// queue views, a /metrics scrape): cores talk by message (msg::Run), never
// through a lock.
#pragma once

#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "engine/shard.h"

namespace ringmail::engine {

// Runs `part` on every shard (on its thread, as admin work: Shard::later
// gives it a bounded share of a busy shard); each part calls its `reply`
// once, maybe turns later; then `done` gets the parts in shard order, on
// `origin`'s thread.
template <class T>
void gather(Shard& origin, std::function<void(Shard&, std::function<void(T)>)> part,
            std::function<void(std::vector<T>)> done) {
  struct State {
    std::vector<T> parts;
    size_t left;
    std::function<void(std::vector<T>)> done;
  };
  auto st = std::make_shared<State>();
  st->parts.resize(origin.peers().size());
  st->left = origin.peers().size();
  st->done = std::move(done);
  for (Shard* peer : origin.peers()) {
    const size_t i = peer->index();
    auto task = [st, i, part, &origin](Shard& s) {
      s.later([st, i, part, &origin, &s] {
        part(s, [st, i, &origin, &s](T r) {
          auto back = [st, i, r = std::move(r)](Shard& o) mutable {
            st->parts[i] = std::move(r);
            if (--st->left == 0) o.later([st] { st->done(std::move(st->parts)); });
          };
          if (&s == &origin) {
            back(origin);
          } else {
            origin.post_from_shard(s, msg::Run{std::move(back)});
          }
        });
      });
    };
    if (peer == &origin) {
      task(origin);
    } else {
      peer->post_from_shard(origin, msg::Run{std::move(task)});
    }
  }
}

}  // namespace ringmail::engine
