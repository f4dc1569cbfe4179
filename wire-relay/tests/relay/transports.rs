//! Listeners and lifecycle: TLS from certificate files, the 0600 Unix socket, local-only
//! mode, graceful shutdown; and the handle directory with real signed cards.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{TestRelay, WAIT, config, tempdir, wait_until};
use serde_json::json;
use wire_core::proto::api::SlotId;
use wire_core::proto::card::{Card, Endpoint};
use wire_core::proto::identity::Identity;
use wire_core::proto::time::UnixMillis;
use wire_relay::{Config, Listener, ServeError};

fn data(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

#[test]
fn tls_from_certificate_files() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let tls = wire_relay::load_tls(&data("test-cert.pem"), &data("test-key.pem")).unwrap();
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server =
            tokio::spawn(wire_relay::serve_many(vec![(Listener::Tcp(tcp), Some(tls))], Config::default(), async {
                let _ = stopped.await;
            }));

        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_file_iter(data("test-ca.pem")).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let connect = || async {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            connector.connect(name, tcp).await.unwrap()
        };
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let ask = |request: &'static str| async {
            let mut tls = connect().await;
            tls.write_all(request.as_bytes()).await.unwrap();
            let mut out = Vec::new();
            let _ = tls.read_to_end(&mut out).await;
            crate::common::Resp::parse(&out)
        };
        let resp = ask("GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await;
        assert_eq!((resp.status, resp.json()["status"].as_str()), (200, Some("ok")));

        // A stream over TLS takes the lean path (an unframed body, no hyper buffers).
        let slot = ask("POST /v1/slots HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            .await
            .json();
        let mut stream = connect().await;
        let head = format!(
            "GET /v1/slots/{}/stream HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\r\n",
            slot["slot"].as_str().unwrap(),
            slot["owner_token"].as_str().unwrap()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("event: hello") {
            let mut buf = [0u8; 512];
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "{}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&got).to_lowercase();
        assert!(text.starts_with("http/1.1 200") && text.contains("connection: close"), "{text}");
        assert!(!text.contains("transfer-encoding"), "hyper would chunk the body: {text}");
        drop(stream);

        // Over TLS 1.3 the stream leaves rustls after its request and the relay seals its
        // records itself: a standard client reads the answer, the hello and then envelopes
        // (record after record, so the sequence numbers line up), under every TLS 1.3 suite;
        // a TLS 1.2 stream stays with rustls and reads the same.
        static TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
        static TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
        let provider = rustls::crypto::ring::default_provider();
        // The test certificate is ECDSA: the TLS 1.2 suites that sign with RSA cannot be used.
        let suites: Vec<_> = provider
            .cipher_suites
            .iter()
            .filter(|s| !format!("{:?}", s.suite()).contains("_RSA_"))
            .map(|s| (*s, if s.version() == &rustls::version::TLS13 { TLS13 } else { TLS12 }))
            .collect();
        assert_eq!(suites.len(), 6, "three TLS 1.3 suites, three ECDSA TLS 1.2 suites");
        let rounds = suites.len();
        let owner = slot["owner_token"].as_str().unwrap().to_owned();
        let slot_id = slot["slot"].as_str().unwrap().to_owned();
        let mut appended = 0;
        for (suite, versions) in suites {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls::pki_types::CertificateDer::pem_file_iter(data("test-ca.pem")).unwrap() {
                roots.add(cert.unwrap()).unwrap();
            }
            let only = rustls::crypto::CryptoProvider { cipher_suites: vec![suite], ..rustls::crypto::ring::default_provider() };
            let client = rustls::ClientConfig::builder_with_provider(Arc::new(only))
                .with_protocol_versions(versions)
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let mut stream = connector.connect(name, tcp).await.unwrap();
            let head = format!(
                "GET /v1/slots/{slot_id}/stream?after={appended} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {owner}\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await.unwrap();
            let mut got = Vec::new();
            let mut read_until = async |want: &str, got: &mut Vec<u8>| {
                while !String::from_utf8_lossy(got).contains(want) {
                    let mut buf = [0u8; 4096];
                    let n = stream.read(&mut buf).await.unwrap_or_else(|e| panic!("{suite:?}: {e}"));
                    assert!(n > 0, "{suite:?}: {}", String::from_utf8_lossy(got));
                    got.extend_from_slice(&buf[..n]);
                }
            };
            read_until("event: hello", &mut got).await;
            for _ in 0..3 {
                appended += 1;
                let post = format!(
                    "POST /v1/slots/{slot_id}/events HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer {owner}\r\nContent-Length: 305\r\n\r\n"
                );
                let mut tls = connect().await;
                let mut body = post.into_bytes();
                body.extend_from_slice(&wire_testkit::relay::envelope(256));
                tls.write_all(&body).await.unwrap();
                let mut out = Vec::new();
                let _ = tls.read_to_end(&mut out).await;
                assert_eq!(crate::common::Resp::parse(&out).status, 201);
                read_until(&format!("id: {appended}\n"), &mut got).await;
            }
        }
        assert_eq!(appended, 3 * rounds);
        // The TLS 1.3 streams (the first one and one per TLS 1.3 suite) were sealed here;
        // the TLS 1.2 ones stayed with rustls.
        let metrics = String::from_utf8(ask("GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.body).unwrap();
        assert!(metrics.contains("wire_relay_tls_streams_sealed_total 4\n"), "{metrics}");

        // Plain HTTP on the TLS port gets nowhere.
        let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
        plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut buf)).await;
        assert!(!String::from_utf8_lossy(&buf).contains("\"ok\""));

        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    });
    assert!(matches!(wire_relay::load_tls(&data("README"), &data("test-key.pem")), Err(ServeError::Tls(_))));
}

#[test]
fn unix_socket_is_0600_and_serves() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir("uds");
    let path = dir.join("relay.sock");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let p = path.clone();
    let server = rt.spawn(async move {
        let unix = wire_relay::bind_unix(&p).unwrap();
        wire_relay::serve(Listener::Unix(unix), Config::default(), async {
            let _ = stopped.await;
        })
        .await
    });
    wait_until(WAIT, "the socket to be bound", || path.exists());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
    s.write_all(b"POST /v1/slots HTTP/1.1\r\nHost: local\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let slot = crate::common::Resp::parse(&out);
    assert_eq!(slot.status, 201);
    // A stream over the socket takes the lean path too.
    let mut stream = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let head = format!(
        "GET /v1/slots/{}/stream HTTP/1.1\r\nHost: local\r\nAuthorization: Bearer {}\r\n\r\n",
        slot.json()["slot"].as_str().unwrap(),
        slot.json()["owner_token"].as_str().unwrap()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("event: hello") {
        let mut buf = [0u8; 512];
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).to_lowercase();
    assert!(text.contains("connection: close") && !text.contains("transfer-encoding"), "{text}");
    drop(stream);
    stop.send(()).unwrap();
    rt.block_on(server).unwrap().unwrap();
    // A regular file in the way is not silently replaced.
    std::fs::write(dir.join("file"), b"x").unwrap();
    let _guard = rt.enter();
    assert!(wire_relay::bind_unix(&dir.join("file")).is_err());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn local_only_refuses_a_public_bind_and_turns_off_the_directory() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let public = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
        let cfg = Config { local_only: true, ..Config::default() };
        let result = wire_relay::serve(Listener::Tcp(public), cfg, async {}).await;
        assert!(matches!(result, Err(ServeError::NotLoopback(_))), "{result:?}");
    });
    let dir = tempdir("local");
    let r = TestRelay::with_config(Config { local_only: true, ..config(false, &dir) }, dir);
    assert_eq!(r.req("GET", "/.well-known/wire/agent?handle=brave-otter", None, b"").code(), "not_found");
    assert_eq!(r.req("POST", "/v1/slots", None, b"").status, 201, "the mailbox still works");
}

#[test]
fn shutdown_drains_and_ends_streams_and_polls() {
    // A long drain timeout: shutdown must end the stream and the poll itself, not wait them out.
    let dir = tempdir("drain");
    let r = TestRelay::with_config(Config { drain_timeout: Duration::from_secs(120), ..config(true, &dir) }, dir);
    let (slot, owner) = r.slot();
    let addr = r.addr;
    let stream = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let req = format!("GET /v1/slots/{slot}/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {owner}\r\n\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    });
    let opened = r.req("POST", "/v1/rendezvous", None, b"").json();
    let (n, side) =
        (opened["nameplate"].as_str().unwrap().to_owned(), opened["side_token"].as_str().unwrap().to_owned());
    let poll = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let req = format!(
            "GET /v1/rendezvous/{n}/messages?wait=30 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {side}\r\n\r\n"
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        crate::common::Resp::parse(&out).status
    });
    wait_until(WAIT, "the stream and the poll to be open", || {
        r.metric("wire_relay_streams_open") == 1 && r.metric("wire_relay_rendezvous_waiting") == 1
    });
    let started = std::time::Instant::now();
    r.stop();
    // Far below the poll's 30 s and the 120 s drain timeout: shutdown ended both.
    assert!(started.elapsed() < Duration::from_secs(25), "shutdown took {:?}", started.elapsed());
    assert!(stream.join().unwrap().contains("event: hello"), "the stream was open and then ended");
    assert_eq!(poll.join().unwrap(), 410, "the long poll is answered, not cut");
    assert!(std::net::TcpStream::connect(addr).is_err(), "the listener is closed");
}

fn agent(r: &TestRelay, seed: [u8; 32]) -> (Identity, Card, String, String) {
    let id = Identity::from_secret_bytes(&seed, [9; 32]);
    let (slot, owner) = r.slot();
    let endpoint = Endpoint { relay: format!("http://{}", r.addr), slot: SlotId::new(slot.clone()).unwrap() };
    let card = Card::issue(&id, vec![endpoint], vec!["message".into()], UnixMillis(1));
    (id, card, slot, owner)
}

#[test]
fn handle_directory_first_come_first_served() {
    let r = TestRelay::start(true);
    let (_, card, _, owner) = agent(&r, [1; 32]);
    let nick = card.character().nickname();
    let claim = |nick: &str, card: &Card, token: &str| {
        r.json("POST", "/v1/handles", Some(token), &json!({"nick": nick, "card": card.signed()}))
    };

    let ok = claim(&nick, &card, &owner);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["handle"], format!("{nick}@relay.test"));
    let resolved = r.req("GET", &format!("/.well-known/wire/agent?handle={nick}@relay.test"), None, b"");
    assert_eq!(resolved.status, 200);
    let back: wire_core::proto::signed::Signed = serde_json::from_value(resolved.json()["card"].clone()).unwrap();
    assert_eq!(Card::verify(back).unwrap(), card);
    assert_eq!(claim(&nick, &card, &owner).status, 200, "the same DID may re-claim");

    assert_eq!(claim("brave-otter", &card, &owner).code(), "bad_request", "nick must be the card's own");
    let (_, _, _, stranger_owner) = agent(&r, [2; 32]);
    assert_eq!(claim(&nick, &card, &stranger_owner).code(), "forbidden", "needs the owner token of a listed slot");
    let mut tampered = card.signed().clone();
    tampered.sig[0] ^= 1;
    let bad = r.json("POST", "/v1/handles", Some(&owner), &json!({"nick": nick, "card": tampered}));
    assert_eq!(bad.code(), "bad_request");
    assert_eq!(r.req("GET", "/.well-known/wire/agent?handle=quiet-lantern", None, b"").code(), "not_found");

    // A slot holds one handle: fresh keys listing the same slot move it, they do not add one
    // (a slot owner cannot fill the directory).
    let other_id = Identity::from_secret_bytes(&[3; 32], [9; 32]);
    let other = Card::issue(&other_id, card.body().endpoints.clone(), vec!["message".into()], UnixMillis(1));
    let other_nick = other.character().nickname();
    assert_eq!(claim(&other_nick, &other, &owner).status, 200);
    let moved = r.req("GET", &format!("/.well-known/wire/agent?handle={nick}@relay.test"), None, b"");
    assert_eq!(moved.code(), "not_found", "the slot's earlier handle is released");
    assert_eq!(claim(&nick, &card, &owner).status, 200, "and free to claim again");

    // Another DID with the same nickname (found by search) cannot take it.
    let mut seen = std::collections::HashMap::new();
    let (first, second) = (0u32..)
        .find_map(|i| {
            let mut seed = [7u8; 32];
            seed[..4].copy_from_slice(&i.to_le_bytes());
            let nick = wire_core::proto::character::Character::of(Identity::from_secret_bytes(&seed, [0; 32]).did())
                .nickname();
            seen.insert(nick, seed).map(|prev| (prev, seed))
        })
        .unwrap();
    let (_, card_a, _, owner_a) = agent(&r, first);
    let (_, card_b, _, owner_b) = agent(&r, second);
    let shared = card_a.character().nickname();
    assert_eq!(shared, card_b.character().nickname());
    assert_eq!(claim(&shared, &card_a, &owner_a).status, 200);
    let taken = claim(&shared, &card_b, &owner_b);
    assert_eq!((taken.status, taken.code().as_str()), (409, "conflict"));
}

#[test]
fn connections_beyond_the_cap_wait_for_a_free_place() {
    let dir = tempdir("cap");
    let r = TestRelay::with_config(Config { max_connections: 2, ..config(false, &dir) }, dir);
    // Two keep-alive connections, each proven served (so both places are taken).
    let idle: Vec<std::net::TcpStream> = (0..2)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(r.addr).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            let mut buf = [0u8; 512];
            let n = s.read(&mut buf).unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
            s
        })
        .collect();
    let mut third = std::net::TcpStream::connect(r.addr).unwrap();
    third.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    third.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut buf = [0u8; 256];
    assert!(third.read(&mut buf).is_err(), "the third connection is not served while two are open");
    drop(idle);
    third.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    third.read_to_end(&mut out).unwrap();
    assert_eq!(crate::common::Resp::parse(&out).status, 200, "served once a place is free");
}
