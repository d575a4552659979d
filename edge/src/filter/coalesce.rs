//! One filter call for the requests of a tenant that arrive while its
//! previous call runs. Sans-IO: [`super::run`] is the shell that runs calls.
//!
//! A call costs about 3 µs however few clicks it carries (the deadline, ten
//! lists lifted into the guest, the answer checked), plus the hop to a
//! blocking thread; single-click requests (redirect links, beacons) would pay
//! that per click. So a request queues its clicks, and if no call is running
//! for its tenant's filter it starts a runner, which takes everything queued
//! (up to [`MAX_CLICKS`]), makes one call, hands each request its part of the
//! answer, and goes on until the queue is empty. A request on an idle edge
//! runs at once: nothing waits for a timer, and batches form only under load.
//!
//! # Invariants
//! * A call's clicks are its requests' clicks in queue order, each
//!   request's together; each request gets the answer for exactly its own.
//! * At most one runner per queue (a version's instance takes one call at
//!   a time anyway), and a queue with requests in it always has one.
//! * Each request's answer is combined from the call's results on its own
//!   (`rollout::combine_parts`), as if it had been called alone: a failed
//!   version fails the requests that need its answer, each of which then
//!   follows the tenant's policy on its own.

use std::collections::VecDeque;
use std::sync::Mutex;

use tally_filter::batch::Columns;

/// Most clicks one call takes from the queue (a bigger request runs alone):
/// a call's deadline is the tenant's, however many requests share it.
pub const MAX_CLICKS: usize = 4096;

/// What one call runs: the clicks of several requests, and for each request
/// in order, how many clicks are its and where its answer goes.
pub struct Group<R> {
    pub columns: Columns,
    pub keys: Vec<u128>,
    pub parts: Vec<(usize, R)>,
}

struct Queued<R> {
    columns: Columns,
    keys: Vec<u128>,
    reply: R,
}

struct State<R> {
    waiting: VecDeque<Queued<R>>,
    running: bool,
}

/// The requests waiting for a tenant filter's next call.
pub struct Queue<R> {
    state: Mutex<State<R>>,
}

impl<R> Default for Queue<R> {
    fn default() -> Self {
        Queue { state: Mutex::new(State { waiting: VecDeque::new(), running: false }) }
    }
}

impl<R> Queue<R> {
    /// Queues a request's clicks (`keys`: their ids, one per click). True
    /// if the caller must start a runner: none is running.
    pub fn push(&self, columns: Columns, keys: Vec<u128>, reply: R) -> bool {
        let mut s = self.state.lock().expect("filter queue lock poisoned");
        s.waiting.push_back(Queued { columns, keys, reply });
        !std::mem::replace(&mut s.running, true)
    }

    /// The runner's next call: the first request queued and those after it
    /// while they fit in [`MAX_CLICKS`]. `None` when the queue is empty,
    /// and the runner must stop (the next push starts another).
    pub fn next(&self) -> Option<Group<R>> {
        let mut s = self.state.lock().expect("filter queue lock poisoned");
        let Some(first) = s.waiting.pop_front() else {
            s.running = false;
            return None;
        };
        let mut group = Group { parts: vec![(first.columns.len(), first.reply)], columns: first.columns, keys: first.keys };
        while s.waiting.front().is_some_and(|q| group.columns.len() + q.columns.len() <= MAX_CLICKS) {
            let q = s.waiting.pop_front().expect("a front");
            group.parts.push((q.columns.len(), q.reply));
            group.columns.append(q.columns);
            group.keys.extend(q.keys);
        }
        Some(group)
    }

    /// A runner that cannot go on (it never started): every waiting request
    /// is dropped (its caller sees its reply channel closed) and the next
    /// push starts a runner again.
    pub fn abandon(&self) {
        // Called while unwinding too: a poisoned lock must not abort.
        let mut s = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        s.waiting.clear();
        s.running = false;
    }
}

#[cfg(test)]
mod tests {
    use tally_filter::batch::ClickView;

    use super::*;

    fn request(ads: std::ops::Range<u64>) -> (Columns, Vec<u128>) {
        let mut c = Columns::default();
        for ad in ads.clone() {
            c.push(&ClickView { ad_id: ad, click_id: "c", ..Default::default() }, []);
        }
        (c, ads.map(u128::from).collect())
    }

    #[test]
    fn one_runner_takes_what_queued_meanwhile_in_order() {
        let q = Queue::default();
        let (c, k) = request(0..2);
        assert!(q.push(c, k, "a"), "an idle queue needs a runner");
        let (c, k) = request(2..3);
        assert!(!q.push(c, k, "b"), "one runner at a time");
        let (c, k) = request(3..6);
        assert!(!q.push(c, k, "c"));
        let g = q.next().unwrap();
        assert_eq!(g.parts, vec![(2, "a"), (1, "b"), (3, "c")]);
        assert_eq!(g.keys, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(g.columns.into_batch().ad_id, vec![0, 1, 2, 3, 4, 5]);
        // While that call runs, another request waits for the same runner.
        let (c, k) = request(6..7);
        assert!(!q.push(c, k, "d"));
        assert_eq!(q.next().unwrap().parts, vec![(1, "d")]);
        assert!(q.next().is_none(), "empty: the runner stops");
        let (c, k) = request(7..8);
        assert!(q.push(c, k, "e"), "and the next request starts one");
    }

    #[test]
    fn a_call_takes_at_most_max_clicks_unless_one_request_is_bigger() {
        let q = Queue::default();
        let n = MAX_CLICKS as u64;
        for (i, ads) in [0..n + 10, 0..n / 2, 0..n / 2, 0..1].into_iter().enumerate() {
            let (c, k) = request(ads);
            q.push(c, k, i);
        }
        let lens = |g: Group<usize>| g.parts.iter().map(|p| p.0).collect::<Vec<_>>();
        assert_eq!(lens(q.next().unwrap()), vec![MAX_CLICKS + 10], "a big request runs alone");
        assert_eq!(lens(q.next().unwrap()), vec![MAX_CLICKS / 2, MAX_CLICKS / 2]);
        assert_eq!(lens(q.next().unwrap()), vec![1]);
        assert!(q.next().is_none());
    }

    #[test]
    fn an_abandoned_queue_drops_its_requests_and_starts_afresh() {
        let q = Queue::default();
        let (c, k) = request(0..1);
        assert!(q.push(c, k, "a"));
        q.abandon();
        assert!(q.next().is_none());
        let (c, k) = request(0..1);
        assert!(q.push(c, k, "b"));
    }
}
