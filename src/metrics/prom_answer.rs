//! The Prometheus HTTP API's query answer, parsed straight into typed samples.
//!
//! A range answer of 100,000 points is ~3 MiB of JSON; parsed into a `serde_json::Value` tree
//! first it took ~15× that at its peak. Here each `[unix_seconds, "value"]` pair becomes an
//! `(i64, f64)` as it is read, without a tree or a string per value.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Unexpected, Visitor};

use super::Series;

/// `{"status": …, "data": …, "errorType": …, "error": …, "warnings": […]}`.
#[derive(Debug, Deserialize)]
pub struct Answer {
    /// `success` or `error`.
    pub status: String,
    /// The result of a success.
    #[serde(default)]
    pub data: Option<Data>,
    /// Warnings Prometheus attached to the answer (`null` taken as none, as some
    /// Prometheus-compatible backends write it).
    #[serde(default)]
    pub warnings: Option<Vec<String>>,
}

/// `data` of a query answer, by `resultType`.
#[derive(Debug, Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
pub enum Data {
    /// A range query's series.
    Matrix(Vec<RangeSeries>),
    /// An instant query's series, one sample each.
    Vector(Vec<InstantSeries>),
    /// One sample without labels.
    Scalar(Sample),
    /// A string result (no numbers to return).
    String(IgnoredAny),
}

/// One series of a matrix.
#[derive(Debug, Deserialize)]
pub struct RangeSeries {
    #[serde(default)]
    metric: Option<BTreeMap<String, String>>,
    /// Absent for series that hold only native histograms.
    #[serde(default)]
    values: Option<Vec<Sample>>,
}

/// One element of a vector.
#[derive(Debug, Deserialize)]
pub struct InstantSeries {
    #[serde(default)]
    metric: Option<BTreeMap<String, String>>,
    #[serde(default)]
    value: Option<Sample>,
}

/// `[unix_seconds, "value"]` as (whole seconds, value); values are decimal strings or `NaN`,
/// `+Inf`, `-Inf` (a bare number is accepted too).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample(pub i64, pub f64);

impl<'de> Deserialize<'de> for Sample {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(SampleVisitor)
    }
}

struct SampleVisitor;

impl<'de> Visitor<'de> for SampleVisitor {
    type Value = Sample;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a sample [unix_seconds, \"value\"]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Sample, A::Error> {
        let t: f64 = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let SampleValue(v) = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(3, &self));
        }
        Ok(Sample(t.floor() as i64, v))
    }
}

/// A sample's value: a string as Prometheus writes it, or a number.
struct SampleValue(f64);

impl<'de> Deserialize<'de> for SampleValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SampleValue;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number as a string (decimal, NaN, +Inf or -Inf)")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<SampleValue, E> {
                parse_value(s)
                    .map(SampleValue)
                    .ok_or_else(|| E::invalid_value(Unexpected::Str(s), &self))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<SampleValue, E> {
                Ok(SampleValue(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<SampleValue, E> {
                Ok(SampleValue(v as f64))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<SampleValue, E> {
                Ok(SampleValue(v as f64))
            }
        }
        d.deserialize_any(V)
    }
}

/// Prometheus sample values are strings: decimal, `NaN`, `+Inf`, `-Inf`.
pub fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// Why `data` gives no series.
#[derive(Debug, PartialEq)]
pub enum NoSeries {
    /// The query evaluates to a string.
    StringResult,
}

impl Data {
    /// The series of the answer.
    pub fn into_series(self) -> Result<Vec<Series>, NoSeries> {
        let series = |metric, points| Series {
            labels: metric,
            points,
        };
        match self {
            Data::Matrix(items) => Ok(items
                .into_iter()
                .map(|s| {
                    let points = s.values.unwrap_or_default();
                    series(
                        s.metric.unwrap_or_default(),
                        points.into_iter().map(|p| (p.0, p.1)).collect(),
                    )
                })
                .collect()),
            Data::Vector(items) => Ok(items
                .into_iter()
                .map(|s| {
                    series(
                        s.metric.unwrap_or_default(),
                        s.value.map(|p| (p.0, p.1)).into_iter().collect(),
                    )
                })
                .collect()),
            Data::Scalar(p) => Ok(vec![series(BTreeMap::new(), vec![(p.0, p.1)])]),
            Data::String(_) => Err(NoSeries::StringResult),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(json: &str) -> Result<Vec<Series>, String> {
        let a: Answer = serde_json::from_str(json).map_err(|e| e.to_string())?;
        a.data
            .ok_or("no data")?
            .into_series()
            .map_err(|e| format!("{e:?}"))
    }

    #[test]
    fn parses_matrix_with_special_values() {
        let s = data(
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"x","pod":"a"},
            "values":[[1700000000,"1.5"],[1700000060.5,"NaN"],[1700000120,"+Inf"],[1700000180,"-Inf"],[1700000240,"1e3"]]}]}}"#,
        )
        .unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].labels["pod"], "a");
        assert_eq!(s[0].labels["__name__"], "x");
        let p = &s[0].points;
        assert_eq!(p[0], (1_700_000_000, 1.5));
        assert_eq!(p[1].0, 1_700_000_060);
        assert!(p[1].1.is_nan());
        assert_eq!(p[2].1, f64::INFINITY);
        assert_eq!(p[3].1, f64::NEG_INFINITY);
        assert_eq!(p[4].1, 1000.0);
    }

    #[test]
    fn parses_vector_scalar_and_histogram_only_series() {
        let s = data(
            r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"service":"a"},"value":[1700000000.123,"2"]},{"metric":{},"value":[1700000000.123,"3"]},
            {"metric":{"h":"1"},"histogram":[1700000000,{"count":"2"}]}]}}"#,
        )
        .unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].points, vec![(1_700_000_000, 2.0)]);
        assert!(s[1].labels.is_empty());
        assert!(s[2].points.is_empty());
        let s = data(
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"42"]}}"#,
        )
        .unwrap();
        assert_eq!(
            s,
            vec![Series {
                labels: BTreeMap::new(),
                points: vec![(1_700_000_000, 42.0)]
            }]
        );
        let m = data(
            r#"{"status":"success","warnings":["w"],"data":{"resultType":"matrix","result":[{"metric":{"a":"b"},"histograms":[[1,{}]]}]}}"#,
        )
        .unwrap();
        assert!(m[0].points.is_empty());
        // explicit nulls, as some Prometheus-compatible backends write them
        let m = data(
            r#"{"status":"success","warnings":null,"data":{"resultType":"matrix","result":[{"metric":null,"values":null}]}}"#,
        )
        .unwrap();
        assert!(m[0].points.is_empty() && m[0].labels.is_empty());
    }

    #[test]
    fn refuses_strings_and_malformed_samples_with_reasons() {
        assert_eq!(
            data(r#"{"status":"success","data":{"resultType":"string","result":[1,"hello"]}}"#),
            Err("StringResult".into())
        );
        for (json, want) in [
            (
                r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"x"]]}]}}"#,
                "invalid value: string \"x\"",
            ),
            (
                r#"{"status":"success","data":{"resultType":"matrix","result":[{"values":[[1]]}]}}"#,
                "invalid length 1",
            ),
            (
                r#"{"status":"success","data":{"resultType":"matrix","result":[{"values":[[1,"2",3]]}]}}"#,
                "invalid length 3",
            ),
            (
                r#"{"status":"success","data":{"resultType":"histogramish","result":[]}}"#,
                "unknown variant `histogramish`",
            ),
        ] {
            let e = data(json).unwrap_err();
            assert!(e.contains(want), "{json}: {e}");
        }
    }
}
