//! Budget continuity (issue 15, item 1; ADR 0010): a logical key (one secret, every
//! generation) never spends more than its cap in a reset period, through routine, manual and
//! leak rotations and a cap update, and its full cap is back after the period boundary.
//!
//! The test spends through the emulator's spend control as inference would, and keeps its own
//! book of every spend OpenRouter accepted. After every step it checks, from OpenRouter's side
//! alone, that what the logical key spent this month plus what its live keys may still spend
//! is within the cap.

use std::collections::HashMap;

use orkv_tests::roles::ops;
use orkv_tests::rotating::{GRACE, advance, deadline, deps, sweep};
use orkv_tests::unique;
use orkv_tests::world::World;
use orkv_vending::Deps;
use serde_json::json;
use time::OffsetDateTime;

/// The test's book: accepted spend per calendar month on the emulator's clock.
struct Book {
    offset: i64,
    spent: HashMap<(i32, u8), f64>,
    cap: f64,
}

impl Book {
    fn new(cap: f64) -> Self {
        Book {
            offset: 0,
            spent: HashMap::new(),
            cap,
        }
    }

    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + time::Duration::seconds(self.offset)
    }

    fn month(&self) -> (i32, u8) {
        let n = self.now();
        (n.year(), u8::from(n.month()))
    }

    fn this_month(&self) -> f64 {
        self.spent.get(&self.month()).copied().unwrap_or(0.0)
    }
}

/// A provision request for a key capped at `limit` a month that lives two days and rotates an
/// hour before it expires.
fn monthly(key_name: &str, limit: f64) -> serde_json::Value {
    json!({"workspace": "checkout", "key_name": key_name, "limit": limit,
           "limit_reset": "monthly", "ttl_seconds": 172_800, "rotate_before_seconds": 3600})
}

async fn pass(w: &World, d: &Deps, book: &mut Book, seconds: i64) {
    advance(w, d, seconds).await;
    book.offset += seconds;
}

/// Spends `usd` with `key`: the status OpenRouter answers; an accepted spend is booked.
async fn spend(w: &World, book: &mut Book, key: &str, usd: f64) -> u16 {
    let status = reqwest::Client::new()
        .post(format!("{}/_emulator/spend", w.emu.url()))
        .json(&json!({"key": key, "usd": usd}))
        .send()
        .await
        .expect("spend")
        .status()
        .as_u16();
    if status == 200 {
        *book.spent.entry(book.month()).or_default() += usd;
    }
    status
}

/// What the live (enabled, unexpired) keys of the secret may still spend this period.
async fn may_spend(w: &World, name: &str) -> f64 {
    w.live_for(name)
        .await
        .iter()
        .map(|k| k["limit_remaining"].as_f64().unwrap_or(f64::INFINITY))
        .sum()
}

/// The invariant: spent this month + what the live keys may still spend ≤ the cap.
async fn check(w: &World, name: &str, book: &Book, step: &str) {
    let may = may_spend(w, name).await;
    let spent = book.this_month();
    assert!(
        spent + may <= book.cap + 1e-6,
        "{step}: spent {spent} + may spend {may} > cap {}",
        book.cap
    );
    assert!(spent <= book.cap + 1e-6, "{step}: spent {spent} > cap");
}

async fn current_key(w: &World, name: &str) -> (String, u64) {
    let (_, rec) = w.current(name).await;
    (
        rec["api_key"].as_str().expect("key").to_owned(),
        rec["generation"].as_u64().expect("generation"),
    )
}

/// Advances to the key's rotate-at and sweeps: the routine rotation.
async fn routine(w: &World, d: &Deps, book: &mut Book, name: &str) -> String {
    let (_, before) = current_key(w, name).await;
    pass(w, d, book, 47 * 3600 + 60).await;
    sweep(d, &unique("routine")).await;
    let (key, after) = current_key(w, name).await;
    assert_eq!(after, before + 1, "routine rotation");
    key
}

async fn rotate_now(d: &Deps, w: &World, name: &str, reason: &str) -> String {
    let (_, before) = current_key(w, name).await;
    ops::handle_request(
        d,
        json!({"action": "rotate", "secret_name": name, "reason": reason,
               "idempotency_id": unique(reason)}),
        deadline(),
    )
    .await
    .expect("rotated");
    let (key, after) = current_key(w, name).await;
    assert_eq!(after, before + 1, "{reason} rotation");
    key
}

/// Spends with `key` in `chunk`s until OpenRouter refuses: the total accepted.
async fn drain(w: &World, book: &mut Book, key: &str, chunk: f64) -> f64 {
    let mut total = 0.0;
    for _ in 0..1000 {
        if spend(w, book, key, chunk).await != 200 {
            return total;
        }
        total += chunk;
    }
    panic!("a capped key never refused");
}

#[tokio::test]
async fn a_logical_key_never_spends_past_its_cap_through_five_rotations_and_gets_it_back_next_month()
 {
    let w = World::start().await;
    let d = deps(&w);
    let mut request = monthly(&unique("budget"), 10.0);
    let name = ops::handle(&d, request.clone(), deadline())
        .await
        .expect("vended")
        .secret_name;
    let mut book = Book::new(10.0);
    // Start clear of a month's end, so the first part of the test stays in one month.
    if book.now().day() > 20 {
        let n = book.now();
        let next = (n.replace_day(1).expect("day") + time::Duration::days(32))
            .replace_day(2)
            .expect("day");
        pass(&w, &d, &mut book, (next - n).whole_seconds()).await;
    }
    let month = within_one_month(&w, &d, &mut book, &name, &mut request).await;
    across_the_boundary(&w, &d, &mut book, &name, month).await;
}

/// A key the sweep rotates only once it has expired (a sweep a day lands past the expiry
/// whenever the day's sweep runs later than the key's creation did; a month's first sweep
/// can be one) serves no consumer: it keeps what it spent, and the successor gets all the
/// room, not half of it.
#[tokio::test]
async fn a_key_rotated_after_it_expired_leaves_all_the_room_to_its_successor() {
    let w = World::start().await;
    let d = deps(&w);
    let name = ops::handle(&d, monthly(&unique("expired"), 10.0), deadline())
        .await
        .expect("vended")
        .secret_name;
    let mut book = Book::new(10.0);
    // Clear of a month's end: the spend below and the check stay in one month.
    if book.now().day() > 25 {
        pass(&w, &d, &mut book, 7 * 86_400).await;
    }
    let (k1, generation) = current_key(&w, &name).await;
    assert_eq!(spend(&w, &mut book, &k1, 3.0).await, 200);

    pass(&w, &d, &mut book, 172_800 + 60).await;
    assert_eq!(spend(&w, &mut book, &k1, 0.1).await, 401, "expired");
    sweep(&d, &unique("expired")).await;
    let (k2, after) = current_key(&w, &name).await;
    assert_eq!(after, generation + 1, "rotated");
    check(&w, &name, &book, "rotated after expiry").await;
    let room = may_spend(&w, &name).await;
    assert!(
        (room - (10.0 - book.this_month())).abs() < 1e-6,
        "the successor has all the room: {room} of {}",
        10.0 - book.this_month()
    );
    assert_eq!(
        spend(&w, &mut book, &k2, 6.5).await,
        200,
        "more than half of it"
    );
    check(&w, &name, &book, "the successor spending").await;
}

/// Five steps in one month (routine, manual, a lowered cap, leak, routine), then both live
/// keys spend all they can. Answers the month.
async fn within_one_month(
    w: &World,
    d: &Deps,
    book: &mut Book,
    name: &str,
    request: &mut serde_json::Value,
) -> (i32, u8) {
    let month = book.month();
    let (k1, _) = current_key(w, name).await;
    assert_eq!(spend(w, book, &k1, 3.0).await, 200);
    check(w, name, book, "first key").await;

    // 1. Routine: the old key keeps its spend and half of what is left (3 + 3.5), the
    // successor the rest (3.5). A consumer on either keeps working.
    let k2 = routine(w, d, book, name).await;
    check(w, name, book, "routine").await;
    assert_eq!(spend(w, book, &k1, 1.0).await, 200, "old key in grace");
    assert_eq!(spend(w, book, &k2, 1.0).await, 200, "new key");
    check(w, name, book, "routine, both spending").await;

    // 2. Manual.
    let k3 = rotate_now(d, w, name, "manual").await;
    check(w, name, book, "manual").await;
    assert_eq!(spend(w, book, &k2, 0.5).await, 200, "old key in grace");
    assert_eq!(spend(w, book, &k3, 0.5).await, 200, "new key");
    check(w, name, book, "manual, both spending").await;

    // The grace ends: the superseded keys are retired, their spend carried, and the current
    // key gets what they left unspent: all the cap's room is on the key in use.
    pass(w, d, book, GRACE + 60).await;
    let r = sweep(d, &unique("retire")).await;
    assert_eq!(r.keys_retired, 2, "{r:?}");
    check(w, name, book, "retired").await;
    let room = may_spend(w, name).await;
    assert!(
        (room - (10.0 - book.this_month())).abs() < 1e-6,
        "the room returned to the current key: {room}"
    );
    assert_eq!(spend(w, book, &k1, 0.1).await, 401, "retired");

    // A cap update, lowered: the key in use is fitted to what the lower cap leaves.
    request["limit"] = json!(8.0);
    ops::handle(d, request.clone(), deadline())
        .await
        .expect("cap update");
    book.cap = 8.0;
    check(w, name, book, "cap lowered").await;
    assert_eq!(spend(w, book, &k3, 0.25).await, 200);

    // 3. Leak: the old key stops at once; the successor has the room.
    let k4 = rotate_now(d, w, name, "leak").await;
    check(w, name, book, "leak").await;
    assert_eq!(spend(w, book, &k3, 0.1).await, 401, "leaked key disabled");
    // All of it at once (ADR 0010): the leaked key was held to its spend before the successor
    // was minted, not to half of what was left.
    let room = may_spend(w, name).await;
    assert!(
        (room - (book.cap - book.this_month())).abs() < 0.011,
        "the successor has all the room: {room} of {}",
        book.cap - book.this_month()
    );
    assert_eq!(spend(w, book, &k4, 0.5).await, 200);
    sweep(d, &unique("leak-retire")).await;
    check(w, name, book, "leak retired").await;

    // 4. Routine again; then both live keys spend all they can: the month's total is the cap,
    // never more.
    let k5 = routine(w, d, book, name).await;
    assert_eq!(book.month(), month, "still the same month");
    check(w, name, book, "routine 2").await;
    drain(w, book, &k4, 0.05).await;
    drain(w, book, &k5, 0.05).await;
    check(w, name, book, "drained").await;
    let total = book.this_month();
    assert!(
        total <= 8.0 + 1e-6 && total > 8.0 - 0.1,
        "the month's total {total} is the cap"
    );

    month
}

/// Into the next month, a sweep a day (the key rotates every two days): the full cap is back
/// within one sweep of the boundary, and still never exceeded.
async fn across_the_boundary(w: &World, d: &Deps, book: &mut Book, name: &str, month: (i32, u8)) {
    let mut rotations = 4;
    loop {
        let (_, before) = current_key(w, name).await;
        let n = book.now();
        let to_boundary = {
            let next = (n.replace_day(1).expect("day") + time::Duration::days(32))
                .replace_day(1)
                .expect("day")
                .replace_time(time::Time::MIDNIGHT);
            (next - n).whole_seconds()
        };
        let step = if book.month() == month {
            86_400.min(to_boundary + 3600)
        } else {
            86_400
        };
        pass(w, d, book, step).await;
        sweep(d, &unique("daily")).await;
        let (_, after) = current_key(w, name).await;
        rotations += after - before;
        check(w, name, book, "daily").await;
        if book.month() != month {
            break;
        }
    }
    assert!(rotations >= 5, "{rotations} rotations");
    let room = may_spend(w, name).await;
    assert!(
        (room - 8.0).abs() < 1e-6,
        "the full cap is back one sweep after the boundary: {room}"
    );
    let (current, _) = current_key(w, name).await;
    let total = drain(w, book, &current, 0.05).await;
    check(w, name, book, "next month").await;
    assert!(total > 0.0, "the key in use spends in the new month");
    assert!(book.this_month() <= 8.0 + 1e-6);
}
