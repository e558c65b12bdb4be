// Builds promtool, Prometheus's rule checker and rule unit-test runner, for the
// chart's PrometheusRule checks (see ../promtool.sh). Not part of the product.
module aurum.dev/testenv/promtool

go 1.26.7

require github.com/prometheus/prometheus v0.316.0
