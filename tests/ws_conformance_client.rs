//! The Autobahn client cases, driven by `.ci/autobahn.sh`: the crate's `Client` against
//! `kosoku -m fuzzingserver` (Autobahn's fuzzing server), with permessage-deflate on and every
//! message compressed. Ignored unless asked for: it needs that server, whose address it takes from
//! `AUTOBAHN_SERVER` (`ws://127.0.0.1:9001`). The verdicts are in the server's report, which the
//! script checks.
#![cfg(all(feature = "client", feature = "deflate"))]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use wsgrpc::client::Client;
use wsgrpc::ws::{Config, DeflateConfig, Message, SessionHandle, handler_fn};

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs an Autobahn fuzzing server; run by .ci/autobahn.sh"]
async fn autobahn_client_cases() {
    let base = std::env::var("AUTOBAHN_SERVER").expect("AUTOBAHN_SERVER=ws://host:port");
    let count = Arc::new(Mutex::new(String::new()));
    let answer = count.clone();
    let client = Client::connect(
        format!("{base}/getCaseCount"),
        handler_fn(move |_session: SessionHandle, message: Message| {
            let answer = answer.clone();
            async move {
                *answer.lock().unwrap() = message.as_text().unwrap_or_default().to_owned();
                Ok(())
            }
        }),
    )
    .await
    .expect("the fuzzing server answers getCaseCount");
    client.closed().await;
    let cases: usize = count.lock().unwrap().parse().expect("a case count");
    assert!(cases > 0);
    // Every message compressed: see .ci/autobahn.sh on why the threshold is 0 for kosoku.
    let config = Config::default().deflate(DeflateConfig::default().threshold(0));
    for case in 1..=cases {
        let echo = handler_fn(|session: SessionHandle, message: Message| async move {
            session.send(message).await
        });
        let url = format!("{base}/runCase?case={case}&agent=wsgrpc");
        // Some cases refuse or break the handshake on purpose; the report judges them.
        if let Ok(client) = Client::builder(url)
            .config(config.clone())
            .connect(echo)
            .await
        {
            let _ = tokio::time::timeout(Duration::from_secs(120), client.closed()).await;
        }
    }
    let client = Client::connect(
        format!("{base}/updateReports?agent=wsgrpc"),
        handler_fn(|_session: SessionHandle, _message: Message| async { Ok(()) }),
    )
    .await
    .expect("the fuzzing server writes its reports");
    client.closed().await;
}
