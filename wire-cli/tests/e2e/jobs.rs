//! Jobs with the real binary and two relay processes (docs/PROTOCOL.md 15): a customer and
//! a provider on separate relays run a job to its end, and the refusals each side makes.

use std::path::PathBuf;

use serde_json::Value;

use crate::common::{RelayProcess, Wire, tempdir};

struct Pair {
    root: PathBuf,
    _relays: (RelayProcess, RelayProcess),
    customer: Wire,
    provider: Wire,
}

impl Drop for Pair {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.root).ok();
    }
}

fn pair(name: &str) -> Pair {
    let root = tempdir(name);
    let r1 = RelayProcess::start(&root.join("r1"), &root.join("r1.log"), &["--local-only"]);
    let r2 = RelayProcess::start(&root.join("r2"), &root.join("r2.log"), &["--local-only"]);
    let (customer, provider) = (Wire::new(&root, "customer"), Wire::new(&root, "provider"));
    customer.json(&["init", "--relay", &r1.addr]);
    provider.json(&["init", "--relay", &r2.addr]);
    let url = customer.json(&["invite"])["url"].as_str().unwrap().to_owned();
    provider.json(&["accept", &url]);
    customer.json(&["pull"]);
    provider.json(&["pull"]);
    Pair { root, _relays: (r1, r2), customer, provider }
}

/// The customer offers the provider a job (`args`: task and the rest); its id.
fn offer(p: &Pair, args: &[&str]) -> String {
    let mut all = vec!["job", "offer"];
    let nick = p.provider.nickname();
    all.push(&nick);
    all.extend_from_slice(args);
    p.customer.json(&all)["id"].as_str().unwrap().to_owned()
}

fn show(w: &Wire, id: &str) -> Value {
    w.json(&["pull"]);
    w.json(&["job", "show", id])
}

#[test]
fn offer_accept_invoice_pay_progress_deliver_settle_on_two_relays() {
    let p = pair("jobs-happy");
    let offered = p.customer.json(&[
        "job",
        "offer",
        &p.provider.nickname(),
        "--task",
        "sha256",
        "--input",
        "hello",
        "--price",
        "1.50",
        "--currency",
        "EUR",
    ]);
    let id = offered["id"].as_str().unwrap().to_owned();
    assert_eq!((offered["verdict"].as_str(), offered["phase"].as_str()), (Some("sent"), Some("offered")));
    let seen = show(&p.provider, &id);
    assert_eq!((seen["role"].as_str(), seen["job"]["task"].as_str()), (Some("provider"), Some("sha256")), "{seen}");
    p.provider.json(&["job", "accept", &id]);
    p.provider.json(&["job", "invoice", &id, "lnbc-opaque-invoice"]);
    assert_eq!(show(&p.customer, &id)["phase"], "payment_required");
    p.customer.json(&["job", "pay", &id, "opaque-preimage"]);
    p.provider.json(&["pull"]);
    for (i, status) in ["reading", "hashing", "checking"].iter().enumerate() {
        p.provider.json(&["job", "progress", &id, status, "--percent", &(30 * (i + 1)).to_string()]);
    }
    p.provider.json(&["job", "deliver", &id, "2cf24dba5fb0a30e"]);
    let delivered = show(&p.customer, &id);
    assert_eq!(delivered["phase"], "delivered", "{delivered}");
    assert_eq!(delivered["job"]["progress"].as_array().unwrap().len(), 3);
    assert_eq!(delivered["job"]["result"], "2cf24dba5fb0a30e");
    p.customer.json(&["job", "settle", &id]);
    let (c, v) = (show(&p.customer, &id), show(&p.provider, &id));
    assert_eq!((c["phase"].as_str(), v["phase"].as_str()), (Some("settled"), Some("settled")));
    assert_eq!(c["job"], v["job"], "both sides hold the same job");
    assert_eq!(c["events"].as_array().unwrap().len(), 9, "offer, accept, invoice, pay, 3 progress, deliver, settle");
    assert_eq!(p.customer.json(&["job", "list"]).as_array().unwrap().len(), 1);
    // `show` re-verifies the provider's signed steps from the customer's inbox.
    let provider_did = p.provider.did();
    for e in c["events"].as_array().unwrap() {
        let theirs = e["from"]["did"] == provider_did.as_str();
        assert_eq!(e["verified"], if theirs { Value::Bool(true) } else { Value::Null }, "{e}");
    }
    // A signature altered in the inbox file is caught.
    let inbox = p.customer.home.join("inbox").join(format!("{}.jsonl", provider_did.trim_start_matches("did:key:")));
    let text = std::fs::read_to_string(&inbox).unwrap();
    let mut lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let last = lines.iter_mut().rev().find(|l| l["kind"] == "job").unwrap();
    let sig = last["signed"]["sig"].as_str().unwrap().to_owned();
    let bent = format!("{}{}", if sig.starts_with('A') { "B" } else { "A" }, &sig[1..]);
    last["signed"]["sig"] = bent.into();
    let rewritten: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&inbox, rewritten).unwrap();
    let checked = p.customer.json(&["job", "show", &id]);
    let failed = checked["events"].as_array().unwrap().iter().filter(|e| e["verified"] == false).count();
    assert_eq!(failed, 1, "{checked}");
}

#[test]
fn each_side_refuses_what_is_not_its_step_and_a_replay_changes_nothing() {
    let p = pair("jobs-refusals");
    let id = offer(&p, &["--task", "summarise"]);
    // Not the customer's turn, and not the provider's step: refused before anything is sent.
    let own = p.customer.run(&["job", "accept", &id, "--json"]);
    assert_eq!(own.json()["error"]["code"], "job_refused", "{own:?}");
    show(&p.provider, &id);
    let early = p.provider.run(&["job", "deliver", &id, "--json", "too soon"]);
    assert_eq!(early.json()["error"]["code"], "job_refused");
    // A cancel and a reject: the cancel crosses the reject; both sides agree.
    p.customer.json(&["job", "cancel", &id, "--reason", "found another way"]);
    p.provider.json(&["job", "reject", &id]);
    let (c, v) = (show(&p.customer, &id), show(&p.provider, &id));
    assert_eq!(c["job"], v["job"]);
    assert_eq!(c["phase"], "cancelled", "a cancel beats a reject it did not see: {c}");
    // A counter passes the turn.
    let id = offer(&p, &["--task", "review"]);
    show(&p.provider, &id);
    p.provider.json(&["job", "counter", &id, "--price", "20", "--currency", "EUR"]);
    let countered = show(&p.customer, &id);
    assert_eq!(countered["job"]["terms"]["amount"], "20");
    p.customer.json(&["job", "accept", &id]);
    assert_eq!(show(&p.provider, &id)["phase"], "accepted");
    // Every event the relay delivered again (a replay) changes nothing.
    let before = show(&p.provider, &id);
    assert_eq!(show(&p.provider, &id), before);
    let unknown = p.customer.run(&["job", "show", "deadbeefdeadbeef", "--json"]);
    assert_eq!(unknown.json()["error"]["code"], "no_such_job");
}

#[test]
fn a_step_signed_by_the_wrong_side_is_refused_at_the_other_side() {
    use wire_core::proto::event::{Event, Kind};
    use wire_core::proto::job::{JobEvent, Step};
    let p = pair("jobs-forged");
    let id = offer(&p, &["--task", "translate"]);
    show(&p.provider, &id);
    p.provider.json(&["job", "accept", &id]);
    let before = show(&p.customer, &id);
    assert_eq!(before["phase"], "accepted");
    // The provider's own keys sign the customer's step (`settle`) and post it with the
    // provider's send token: the customer's wire refuses it.
    let me = wire_core::proto::identity::Identity::from_secret_file(
        &std::fs::read(p.provider.home.join("identity.json")).unwrap(),
    )
    .unwrap();
    let peers: wire_core::home::Peers =
        serde_json::from_slice(&std::fs::read(p.provider.home.join("peers.json")).unwrap()).unwrap();
    let customer = &peers.peers[0];
    let accept = before["events"].as_array().unwrap().iter().find(|e| e["step"] == "accept").unwrap();
    let prev = wire_core::proto::b64::decode_array::<32>(accept["hash"].as_str().unwrap()).unwrap();
    let job: [u8; 16] =
        (0..16).map(|i| u8::from_str_radix(&id[2 * i..2 * i + 2], 16).unwrap()).collect::<Vec<_>>().try_into().unwrap();
    let body = serde_json::to_value(JobEvent { job, prev: vec![prev], step: Step::Settle }).unwrap();
    let now = wire_core::endpoint::now();
    let event =
        Event::new(&me, customer.card.did().clone(), Kind::Job, body, now, &mut rand_core::OsRng).sign(&me).unwrap();
    let env = wire_core::proto::envelope::seal(&event, &customer.card.x25519_public(), &mut rand_core::OsRng).unwrap();
    let slot = customer.card.body().endpoints[0].slot.to_string();
    let (status, _) =
        p._relays.0.req("POST", &format!("/v1/slots/{slot}/events"), Some(customer.send_token.expose()), &env.0);
    assert_eq!(status, 201);
    let pulled = p.customer.json(&["pull"]);
    assert_eq!(pulled["rejected"], 1, "{pulled}");
    let after = p.customer.json(&["job", "show", &id]);
    assert_eq!((after["phase"].as_str(), after["events"].as_array().unwrap().len()), (Some("accepted"), 2), "{after}");
    let status = p.customer.json(&["status"]);
    assert!(status["rejected"]["reasons"].to_string().contains("not this side's step"), "{status}");
}

/// `wire job serve --once` as the provider, in a thread; what it printed.
fn serve(p: &Pair, run: &str, timeout: &str) -> std::thread::JoinHandle<crate::common::Run> {
    let home = p.provider.home.clone();
    let (customer, run, timeout) = (p.customer.nickname(), run.to_owned(), timeout.to_owned());
    std::thread::spawn(move || {
        Wire { home }.run(&[
            "job",
            "serve",
            "--task",
            "sha256",
            "--run",
            &run,
            "--peer",
            &customer,
            "--timeout",
            &timeout,
            "--once",
            "--json",
        ])
    })
}

#[test]
fn job_serve_runs_the_command_and_delivers_its_output() {
    let p = pair("jobs-serve");
    let server = serve(&p, "echo hashing >&2; sha256sum", "60s");
    let id = offer(&p, &["--task", "sha256", "--input", "hello"]);
    let out = server.join().unwrap().ok();
    assert_eq!(out.json()["verdict"], "delivered", "{out:?}");
    let done = show(&p.customer, &id);
    assert_eq!(done["phase"], "delivered", "{done}");
    assert_eq!(
        done["job"]["result"], "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824  -\n",
        "the digest of `hello`"
    );
    assert_eq!(done["job"]["progress"][0][0], "hashing", "a stderr line as progress: {done}");
    // A run past its timeout is killed (with its process group) and the job cancelled.
    let server = serve(&p, "sleep 120", "1s");
    let id = offer(&p, &["--task", "sha256", "--input", "x"]);
    assert_eq!(server.join().unwrap().ok().json()["verdict"], "cancelled");
    let cancelled = show(&p.customer, &id);
    assert_eq!(cancelled["phase"], "cancelled");
    assert!(cancelled["job"]["reason"].as_str().unwrap().contains("killed"), "{cancelled}");
}

/// The scenario the systems wire replaces are built around, scripted: a provider announces
/// what it does, a customer finds it among its peers, asks, is asked to pay (an opaque
/// invoice), pays (an opaque reference), follows the progress, gets the result, settles.
#[test]
fn the_seed_scenario_announce_discover_request_pay_progress_result_settle() {
    let p = pair("jobs-seed");
    let told = p.provider.json(&[
        "capabilities",
        "set",
        "--task",
        "translate",
        "--price",
        "0.20",
        "--currency",
        "USD",
        "--note",
        "fr and de",
    ]);
    assert_eq!(told["told"].as_array().unwrap().len(), 1, "{told}");
    p.customer.json(&["pull"]);
    let found = p.customer.json(&["job", "providers", "translate"]);
    let provider = &found[0];
    assert_eq!(
        (provider["peer"]["nickname"].as_str(), provider["available"].as_bool(), provider["terms"]["amount"].as_str()),
        (Some(p.provider.nickname().as_str()), Some(true), Some("0.20")),
        "{found}"
    );
    assert!(p.customer.json(&["job", "providers", "summarise"]).as_array().unwrap().is_empty());
    let id = p.customer.json(&[
        "job",
        "offer",
        provider["peer"]["nickname"].as_str().unwrap(),
        "--task",
        "translate",
        "--input",
        "bonjour",
        "--price",
        "0.20",
        "--currency",
        "USD",
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    show(&p.provider, &id);
    p.provider.json(&["job", "accept", &id]);
    p.provider.json(&["job", "invoice", &id, "lnbc200n1-opaque"]);
    let asked = show(&p.customer, &id);
    assert_eq!(
        (asked["phase"].as_str(), asked["job"]["invoice"].as_str()),
        (Some("payment_required"), Some("lnbc200n1-opaque"))
    );
    p.customer.json(&["job", "pay", &id, "preimage-opaque"]);
    show(&p.provider, &id);
    p.provider.json(&["job", "progress", &id, "translating", "--percent", "50"]);
    p.provider.json(&["job", "deliver", &id, "hello"]);
    let done = show(&p.customer, &id);
    assert_eq!(
        (done["job"]["progress"][0][0].as_str(), done["job"]["result"].as_str(), done["job"]["payment"].as_str()),
        (Some("translating"), Some("hello"), Some("preimage-opaque"))
    );
    p.customer.json(&["job", "settle", &id]);
    assert_eq!(show(&p.provider, &id)["phase"], "settled");
    assert_eq!(show(&p.customer, &id)["job"], show(&p.provider, &id)["job"]);
}

#[test]
fn offers_over_the_providers_budget_are_refused_with_the_reason() {
    let p = pair("jobs-budget");
    p.provider.json(&["job", "budget", "--max-open", "1", "--max-amount", "5", "--currency", "EUR"]);
    let offer = |price: &str, currency: &str| {
        p.customer.json(&[
            "job",
            "offer",
            &p.provider.nickname(),
            "--task",
            "review",
            "--price",
            price,
            "--currency",
            currency,
        ])["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (too_much, wrong_currency, fine) = (offer("10", "EUR"), offer("3", "USD"), offer("4.99", "EUR"));
    // The provider's pull answers each over-budget offer at once; the customer sees why.
    p.provider.json(&["pull"]);
    let seen = |id: &str| show(&p.customer, id);
    let refused = seen(&too_much);
    assert_eq!(refused["phase"], "rejected", "{refused}");
    assert!(refused["job"]["reason"].as_str().unwrap().contains("at most 5 EUR"), "{refused}");
    assert!(seen(&wrong_currency)["job"]["reason"].as_str().unwrap().contains("in EUR, not USD"));
    assert_eq!(seen(&fine)["phase"], "offered");
    // One open job at most: the next offer is refused while that one is open.
    let another = offer("1", "EUR");
    p.provider.json(&["pull"]);
    let full = seen(&another);
    assert!(full["job"]["reason"].as_str().unwrap().contains("open already"), "{full}");
    assert_eq!(seen(&fine)["phase"], "offered", "the open job is untouched");
    // A day's budget adds up what was offered in the last 24 hours (the open 4.99 counts;
    // rejected jobs do not).
    p.provider.json(&["job", "budget", "--max-amount-per-day", "10", "--currency", "EUR"]);
    let (fits, over) = (offer("5", "EUR"), offer("0.02", "EUR"));
    p.provider.json(&["pull"]);
    assert_eq!(seen(&fits)["phase"], "offered");
    let day = seen(&over);
    assert!(day["job"]["reason"].as_str().unwrap().contains("9.99 EUR from you in the last 24 hours"), "{day}");
}

#[test]
fn an_offer_expires_and_a_delivery_can_be_disputed() {
    let p = pair("jobs-expiry");
    let id = offer(&p, &["--task", "review", "--expires", "1m"]);
    show(&p.provider, &id);
    // Two hours later by the provider's clock: too late to accept (the offer reads expired).
    let later = p.root.join("provider-clock");
    std::fs::write(&later, (2 * 3_600_000u64).to_string()).unwrap();
    let env = [("WIRE_CLOCK_OFFSET_FILE", later.to_str().unwrap())];
    let late = p.provider.run_with(&["job", "accept", &id, "--json"], &env);
    assert_eq!(late.json()["error"]["code"], "job_refused", "{late:?}");
    assert!(late.json()["error"]["message"].as_str().unwrap().contains("expired"), "{late:?}");
    let listed = p.provider.run_with(&["job", "list", "--json"], &env).ok().json();
    assert_eq!(listed[0]["phase"], "expired", "{listed}");
    // A delivery the customer does not accept: disputed, with the reason, on both sides.
    let id = offer(&p, &["--task", "sha256", "--input", "hello"]);
    show(&p.provider, &id);
    p.provider.json(&["job", "accept", &id]);
    p.provider.json(&["job", "deliver", &id, "not a digest"]);
    show(&p.customer, &id);
    p.customer.json(&["job", "dispute", &id, "that is not the sha256 of hello"]);
    let seen = show(&p.provider, &id);
    assert_eq!(
        (seen["phase"].as_str(), seen["job"]["reason"].as_str()),
        (Some("disputed"), Some("that is not the sha256 of hello"))
    );
    assert_eq!(seen["job"], show(&p.customer, &id)["job"]);
}

#[test]
fn a_job_step_replayed_by_the_relay_changes_nothing() {
    let p = pair("jobs-replay");
    let id = offer(&p, &["--task", "review"]);
    show(&p.provider, &id);
    p.provider.json(&["job", "accept", &id]);
    // The accept, as the customer's relay holds it before the customer pulls.
    let account: Value = serde_json::from_slice(&std::fs::read(p.customer.home.join("account.json")).unwrap()).unwrap();
    let (slot, owner) = (account["slot"].as_str().unwrap(), account["owner_token"].as_str().unwrap());
    let listed = p._relays.0.json("GET", &format!("/v1/slots/{slot}/events"), Some(owner), b"");
    let accept = wire_core::proto::b64::decode(listed["events"][0]["envelope"].as_str().unwrap()).unwrap();
    let before = show(&p.customer, &id);
    assert_eq!(before["phase"], "accepted");
    // Posted again once the first was read and acked (the relay no longer holds it).
    let peers: wire_core::home::Peers =
        serde_json::from_slice(&std::fs::read(p.provider.home.join("peers.json")).unwrap()).unwrap();
    let token = peers.peers[0].send_token.expose().to_owned();
    let (status, _) = p._relays.0.req("POST", &format!("/v1/slots/{slot}/events"), Some(&token), &accept);
    assert_eq!(status, 201, "stored anew: the first was acked");
    let pulled = p.customer.json(&["pull"]);
    assert_eq!((pulled["received"].as_u64(), pulled["duplicates"].as_u64()), (Some(0), Some(1)), "{pulled}");
    assert_eq!(p.customer.json(&["job", "show", &id]), before);
}

/// A job opened in a room: the provider is a member the customer never paired with. Its
/// capability card reaches the customer through the room; `wire job serve --room` bids on
/// the call with a one-use invite for the customer alone; the award pairs them through it
/// and the offer (naming the call) goes 1:1; the provider runs the task and delivers. The
/// room's budget applies on top of the peer's to offers from the room's calls.
#[test]
fn a_call_for_offers_in_a_room_is_bid_on_awarded_and_delivered_one_to_one() {
    let root = tempdir("jobs-room-call");
    let r1 = RelayProcess::start(&root.join("r1"), &root.join("r1.log"), &["--local-only"]);
    let r2 = RelayProcess::start(&root.join("r2"), &root.join("r2.log"), &["--local-only"]);
    let (customer, provider) = (Wire::new(&root, "customer"), Wire::new(&root, "provider"));
    customer.json(&["init", "--relay", &r1.addr]);
    provider.json(&["init", "--relay", &r2.addr]);
    customer.json(&["room", "create", "market"]);
    let url = customer.json(&["room", "invite", "market", "--ttl", "1h"])["url"].as_str().unwrap().to_owned();
    provider.json(&["room", "join", &url]);
    customer.json(&["pull"]);
    assert_eq!(provider.json(&["pull"])["rooms"]["joined"], serde_json::json!(["market"]));
    assert_eq!(customer.json(&["peers"]).as_array().unwrap().len(), 0, "members, not peers");

    // The card goes to the room; the customer finds the provider there.
    let told = provider.json(&["capabilities", "set", "--task", "sha256", "--price", "1", "--currency", "EUR"]);
    assert_eq!(told["rooms"], serde_json::json!(["market"]), "{told}");
    customer.json(&["pull"]);
    let found = customer.json(&["job", "providers", "sha256"]);
    assert_eq!(found[0]["peer"]["did"], provider.did(), "{found}");
    assert_eq!((found[0]["paired"].as_bool(), &found[0]["rooms"]), (Some(false), &serde_json::json!(["market"])));

    let home = provider.home.clone();
    let server = std::thread::spawn(move || {
        Wire { home }.run(&[
            "job",
            "serve",
            "--task",
            "sha256",
            "--run",
            "sha256sum",
            "--room",
            "market",
            "--once",
            "--json",
        ])
    });
    let call = customer.json(&["job", "offer", "market", "--task", "sha256", "--input", "hello"]);
    let call_id = call["id"].as_str().unwrap().to_owned();
    assert_eq!(call["mine"], true, "{call}");
    let bids = crate::common::eventually(crate::common::WAIT, "the provider's bid", || {
        customer.json(&["pull"]);
        let calls = customer.json(&["job", "calls"]);
        let bids = calls[0]["bids"].as_array().cloned().unwrap_or_default();
        (!bids.is_empty()).then_some(bids)
    });
    assert_eq!(
        (bids[0]["from"]["did"].as_str(), bids[0]["paired"].as_bool()),
        (Some(provider.did().as_str()), Some(false))
    );
    let awarded = customer.json(&["job", "award", &call_id[..8], &provider.nickname()]);
    assert_eq!(awarded["award"]["state"], "pairing", "{awarded}");
    let job = crate::common::eventually(crate::common::WAIT, "the offer after pairing", || {
        customer.json(&["pull"]);
        customer.json(&["job", "calls", "--all"])[0]["award"]["job"].as_str().map(str::to_owned)
    });
    assert_eq!(customer.json(&["peers"]).as_array().unwrap().len(), 1, "paired through the bid's invite");
    let served = server.join().unwrap().ok();
    let said: Vec<Value> = served.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(said.first().map(|v| &v["verdict"]), Some(&Value::from("bid")), "{served:?}");
    assert_eq!(said.last().map(|v| &v["verdict"]), Some(&Value::from("delivered")), "{served:?}");
    let done = show(&customer, &job);
    assert_eq!(done["phase"], "delivered", "{done}");
    assert_eq!(done["job"]["call"]["id"].as_str().map(|_| ()), Some(()), "the offer names the call: {done}");
    assert_eq!(done["job"]["result"], "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824  -\n");

    // The room's budget: a price over it is refused for offers from the room's calls.
    provider.json(&["job", "budget", "--room", "market", "--max-amount", "0.50", "--currency", "EUR"]);
    let call = customer.json(&[
        "job",
        "offer",
        "market",
        "--task",
        "sha256",
        "--input",
        "x",
        "--price",
        "1",
        "--currency",
        "EUR",
    ]);
    let call_id = call["id"].as_str().unwrap().to_owned();
    crate::common::eventually(crate::common::WAIT, "the call at the provider", || {
        provider.json(&["pull"]);
        provider.json(&["job", "calls"]).as_array().unwrap().iter().any(|c| c["id"] == call_id.as_str()).then_some(())
    });
    provider.json(&["job", "bid", &call_id[..8], "--note", "on it"]);
    crate::common::eventually(crate::common::WAIT, "the second bid", || {
        customer.json(&["pull"]);
        let calls = customer.json(&["job", "calls"]);
        calls
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == call_id.as_str() && c["bids"][0]["note"] == "on it")
            .then_some(())
    });
    let awarded = customer.json(&["job", "award", &call_id[..8], &provider.nickname()]);
    let job = awarded["award"]["job"].as_str().expect("paired now: offered at once").to_owned();
    provider.json(&["pull"]);
    let refused = show(&customer, &job);
    assert_eq!(refused["phase"], "rejected", "{refused}");
    assert!(refused["job"]["reason"].as_str().unwrap().contains("at most 0.50 EUR"), "{refused}");
    std::fs::remove_dir_all(&root).ok();
}
