"""What operators watch: readiness and liveness (health.py), Prometheus metrics (metrics.py), the one logging set-up and the trace context (logs.py)."""
