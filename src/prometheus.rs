//! A [`metrics`] recorder that keeps every series in atomics and writes them in the Prometheus
//! text exposition format (version 0.0.4). `duplex --metrics ADDR` installs it and serves
//! [`Recorder::render`] at `GET /metrics` ([`crate::metrics_args`]).
//!
//! Why not `metrics-exporter-prometheus`: its histograms keep every sample in a growing bucket of
//! blocks until the next scrape, which allocates while recording (on the send path, for the
//! broadcast-duration histogram), and it brings its own HTTP server. Here a histogram is a fixed
//! array of counters with explicit bounds, so recording is a few atomic adds and never allocates,
//! and the listener is the command line's own.
//!
//! This file depends on `metrics` and `std` only: the allocation test of the pub/sub fan-out
//! (crates/duplex-pubsub/tests/fan_out_allocations.rs) compiles it as is, to count with the very
//! recorder the command line installs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, SharedString, Unit};

/// Bounds of every `*_seconds` histogram: from half a millisecond to ten seconds.
pub const SECONDS_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Bounds of any other histogram (sizes, counts).
pub const DEFAULT_BUCKETS: &[f64] = &[1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0];

/// The recorder; clones share the same series.
#[derive(Clone, Default)]
pub struct Recorder {
    families: Arc<Mutex<BTreeMap<String, Family>>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Default)]
struct Family {
    kind: Option<Kind>,
    help: Option<String>,
    /// Series by their labels, in registration order.
    series: Vec<(Vec<(String, String)>, Series)>,
}

#[derive(Clone)]
enum Series {
    Counter(Arc<AtomicU64>),
    /// An `f64`'s bits (the `metrics` crate's own gauge on an `AtomicU64`).
    Gauge(Arc<AtomicU64>),
    Histogram(Arc<FixedHistogram>),
}

/// A histogram with fixed bounds: one counter per bucket (not cumulative: summed when written),
/// the sum of the values (as `f64` bits) and their count.
pub struct FixedHistogram {
    bounds: &'static [f64],
    /// One per bound, and one for values above the last.
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
    count: AtomicU64,
}

impl FixedHistogram {
    fn new(bounds: &'static [f64]) -> Self {
        FixedHistogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
            count: AtomicU64::new(0),
        }
    }
}

impl HistogramFn for FixedHistogram {
    fn record(&self, value: f64) {
        let i = self.bounds.iter().position(|&b| value <= b).unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| Some((f64::from_bits(bits) + value).to_bits()));
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

impl Recorder {
    /// A recorder with no series yet.
    pub fn new() -> Self {
        Recorder::default()
    }

    fn families(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Family>> {
        self.families.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn describe(&self, name: KeyName, kind: Kind, description: SharedString) {
        let mut families = self.families();
        let family = families.entry(name.as_str().to_owned()).or_default();
        family.kind.get_or_insert(kind);
        family.help = Some(description.into_owned());
    }

    /// The series of `key`, made on first registration (the only time this allocates).
    fn series(&self, key: &Key, kind: Kind) -> Series {
        let labels: Vec<(String, String)> = key.labels().map(|l| (l.key().to_owned(), l.value().to_owned())).collect();
        let mut families = self.families();
        let family = families.entry(key.name().to_owned()).or_default();
        let kind = *family.kind.get_or_insert(kind);
        if let Some((_, s)) = family.series.iter().find(|(l, _)| *l == labels) {
            return s.clone();
        }
        let series = match kind {
            Kind::Counter => Series::Counter(Arc::default()),
            Kind::Gauge => Series::Gauge(Arc::new(AtomicU64::new(0f64.to_bits()))),
            Kind::Histogram => {
                let bounds = if key.name().ends_with("_seconds") { SECONDS_BUCKETS } else { DEFAULT_BUCKETS };
                Series::Histogram(Arc::new(FixedHistogram::new(bounds)))
            }
        };
        family.series.push((labels, series.clone()));
        series
    }

    /// Every series in the Prometheus text format, families sorted by name.
    pub fn render(&self) -> String {
        let families = self.families();
        let mut out = String::with_capacity(8 * 1024);
        for (name, family) in families.iter() {
            let Some(kind) = family.kind else { continue };
            if family.series.is_empty() {
                continue;
            }
            let help = family.help.as_deref().unwrap_or(name);
            let _ = writeln!(out, "# HELP {name} {}", help.replace('\\', "\\\\").replace('\n', "\\n"));
            let type_name = match kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            let _ = writeln!(out, "# TYPE {name} {type_name}");
            for (labels, series) in &family.series {
                match series {
                    Series::Counter(c) => {
                        let _ = writeln!(out, "{name}{} {}", label_set(labels, None), c.load(Ordering::Relaxed));
                    }
                    Series::Gauge(g) => {
                        let v = f64::from_bits(g.load(Ordering::Relaxed));
                        let _ = writeln!(out, "{name}{} {}", label_set(labels, None), number(v));
                    }
                    Series::Histogram(h) => {
                        let mut cumulative = 0;
                        for (i, bucket) in h.buckets.iter().enumerate() {
                            cumulative += bucket.load(Ordering::Relaxed);
                            let le = h.bounds.get(i).map_or_else(|| "+Inf".to_owned(), |b| number(*b));
                            let _ = writeln!(out, "{name}_bucket{} {cumulative}", label_set(labels, Some(&le)));
                        }
                        let sum = f64::from_bits(h.sum.load(Ordering::Relaxed));
                        let _ = writeln!(out, "{name}_sum{} {}", label_set(labels, None), number(sum));
                        // The count written is the +Inf bucket's, so that the two always agree.
                        let _ = writeln!(out, "{name}_count{} {cumulative}", label_set(labels, None));
                    }
                }
            }
        }
        out
    }
}

/// `{a="x",b="y"}` (with `le` last for a histogram bucket), or nothing without labels.
fn label_set(labels: &[(String, String)], le: Option<&str>) -> String {
    if labels.is_empty() && le.is_none() {
        return String::new();
    }
    let mut s = String::from("{");
    let all = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).chain(le.map(|le| ("le", le)));
    for (i, (k, v)) in all.enumerate() {
        if i > 0 {
            s.push(',');
        }
        let v = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        let _ = write!(s, "{k}=\"{v}\"");
    }
    s.push('}');
    s
}

/// A sample value as Prometheus reads it.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

impl metrics::Recorder for Recorder {
    fn describe_counter(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.describe(key, Kind::Counter, description);
    }

    fn describe_gauge(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.describe(key, Kind::Gauge, description);
    }

    fn describe_histogram(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        self.describe(key, Kind::Histogram, description);
    }

    fn register_counter(&self, key: &Key, _metadata: &Metadata<'_>) -> Counter {
        match self.series(key, Kind::Counter) {
            Series::Counter(c) => Counter::from_arc(c),
            // The name was first registered as another kind: this one goes nowhere.
            _ => Counter::noop(),
        }
    }

    fn register_gauge(&self, key: &Key, _metadata: &Metadata<'_>) -> Gauge {
        match self.series(key, Kind::Gauge) {
            Series::Gauge(g) => Gauge::from_arc(g),
            _ => Gauge::noop(),
        }
    }

    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> Histogram {
        match self.series(key, Kind::Histogram) {
            Series::Histogram(h) => Histogram::from_arc(h),
            _ => Histogram::noop(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics::Recorder as _;

    static META: Metadata<'static> = Metadata::new("test", metrics::Level::INFO, None);

    #[test]
    fn counters_gauges_and_histograms_are_written_in_the_text_format() {
        let r = Recorder::new();
        r.describe_counter("x_total".into(), None, "Things, \"quoted\"\nsecond line".into());
        let c = r.register_counter(&Key::from_parts("x_total", vec![metrics::Label::new("k", "a\"b")]), &META);
        c.increment(3);
        let g = r.register_gauge(&Key::from_name("g"), &META);
        g.increment(2.0);
        g.decrement(0.5);
        let h = r.register_histogram(&Key::from_name("d_seconds"), &META);
        h.record(0.003);
        h.record(20.0);
        let text = r.render();
        assert!(text.contains("# HELP x_total Things, \"quoted\"\\nsecond line\n"), "{text}");
        assert!(text.contains("# TYPE x_total counter\nx_total{k=\"a\\\"b\"} 3\n"), "{text}");
        assert!(text.contains("# TYPE g gauge\ng 1.5\n"), "{text}");
        assert!(text.contains("d_seconds_bucket{le=\"0.0025\"} 0\nd_seconds_bucket{le=\"0.005\"} 1\n"), "{text}");
        assert!(text.contains("d_seconds_bucket{le=\"+Inf\"} 2\nd_seconds_sum 20.003\nd_seconds_count 2\n"), "{text}");
    }

    #[test]
    fn a_key_registered_twice_shares_one_series() {
        let r = Recorder::new();
        r.register_counter(&Key::from_name("n_total"), &META).increment(1);
        r.register_counter(&Key::from_name("n_total"), &META).increment(1);
        assert!(r.render().contains("n_total 2\n"));
    }
}
