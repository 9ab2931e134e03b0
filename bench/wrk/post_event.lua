-- wrk script for the ingest scenario: POST /v1/events with one ~200-byte JSON event
-- (the shape of bench.harness.event_data), then one machine-readable summary line.
wrk.method = "POST"
wrk.path = "/v1/events"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"type":"bench.event","data":{"lead_id":"lead_00000042","score":0.87,'
  .. '"campaign_id":"camp_spring_homes","source":"benchmark","note":"'
  .. string.rep("x", 96) .. '"}}'

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH-JSON {"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,'
    .. '"write":%d,"status":%d,"timeout":%d},"latency_us":{"p50":%.0f,"p90":%.0f,'
    .. '"p99":%.0f,"max":%.0f,"mean":%.1f}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
