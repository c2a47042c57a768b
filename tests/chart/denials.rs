//! The API calls a controller was denied, from its logs.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, Once};
use std::thread::ThreadId;

/// Denied API calls (403) that the code running on one test's thread logged: a controller
/// that lacks a permission retries and logs, so an empty list shows the RBAC was enough.
/// `#[tokio::test]` runs each test's tasks on its own thread.
#[derive(Clone, Default)]
pub struct Denials(Arc<Mutex<Vec<(ThreadId, String)>>>);

pub static DENIALS: std::sync::OnceLock<Denials> = std::sync::OnceLock::new();

impl Denials {
    /// The process-wide recorder, installed as the global tracing subscriber on first use.
    pub fn install() -> Denials {
        static INSTALL: Once = Once::new();
        let denials = DENIALS.get_or_init(Denials::default).clone();
        INSTALL.call_once(|| {
            use tracing_subscriber::prelude::*;
            let verbose = std::env::var("RELMAN_LOG").ok().map(|filter| {
                tracing_subscriber::fmt::layer()
                    .with_test_writer()
                    .with_filter(tracing_subscriber::EnvFilter::new(filter))
            });
            let _ = tracing_subscriber::registry()
                .with(denials.clone())
                .with(verbose)
                .try_init();
        });
        denials
    }

    /// `result`, with the denials logged on this thread added to its error: a controller that
    /// lacks a permission usually shows as a release that never finishes.
    pub fn explain<T>(&self, result: anyhow::Result<T>) -> anyhow::Result<T> {
        result.map_err(|e| {
            let denied = self.on_this_thread();
            if denied.is_empty() {
                e
            } else {
                e.context(format!("API calls were denied:\n{}", denied.join("\n")))
            }
        })
    }

    /// The distinct denials logged on the current thread.
    pub fn on_this_thread(&self) -> Vec<String> {
        let me = std::thread::current().id();
        let distinct: BTreeSet<String> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(thread, _)| *thread == me)
            .map(|(_, text)| text.clone())
            .collect();
        distinct.into_iter().collect()
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Denials {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() > tracing::Level::WARN {
            return;
        }
        struct Text(String);
        impl tracing::field::Visit for Text {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                use std::fmt::Write as _;
                let _ = write!(self.0, " {}={value:?}", field.name());
            }
        }
        let mut text = Text(String::new());
        event.record(&mut text);
        let lower = text.0.to_ascii_lowercase();
        if lower.contains("forbidden") || lower.contains("403") {
            self.0
                .lock()
                .unwrap()
                .push((std::thread::current().id(), text.0));
        }
    }
}
