"""The HTTP surface kube-proxy users already point probes and dashboards at.

`health` decides whether the proxy is applying changes in time (pure state); `health_server`,
`metrics_server` and `servicehealth` serve it, the metrics and the per-Service health checks
over HTTP with kube-proxy's paths, bodies and headers; `metrics` declares every metric and the
narrow functions the rest of ipvsd records through. Nothing here decides what gets programmed.
"""
