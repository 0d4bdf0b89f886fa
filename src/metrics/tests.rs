use super::*;

#[test]
fn exposition_counts_a_request() {
    let m = Metrics::new();
    m.request(
        Some(RouteFamily::V1Vardata),
        Some(CacheStatus::Hit),
        StatusCode::OK,
        Duration::from_micros(3),
        None,
    );
    let text = m.encode();
    assert!(
        text.contains(r#"evalgate_requests_total{route="v1_vardata",cache="HIT"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"evalgate_responses_total{class="2xx"} 1"#));
    assert!(text.contains("evalgate_hit_duration_seconds_count 1"));
}

#[test]
fn upstream_health_needs_a_recent_failure_without_an_answer() {
    let m = Metrics::new();
    let window = Duration::from_secs(30);
    assert_eq!(m.upstream_health(window), UpstreamHealth::Unknown);
    m.upstream(UpstreamOutcome::Connect, Duration::from_millis(1));
    assert_eq!(m.upstream_health(window), UpstreamHealth::Failing);
    m.upstream(UpstreamOutcome::Status(503), Duration::from_millis(1));
    assert_eq!(m.upstream_health(window), UpstreamHealth::Answered);
}
