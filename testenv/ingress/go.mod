// Builds Traefik (its Kubernetes Ingress provider) for the test cluster's
// ingress controller (see ../../ingress.sh). Not part of the product.
module aurum.dev/testenv/ingress

go 1.26.0

require github.com/traefik/traefik/v3 v3.6.12

// Traefik's own replace and exclude lines (its go.mod), which a dependent
// module must repeat: the go command applies only the main module's.
replace (
	github.com/abbot/go-http-auth => github.com/containous/go-http-auth v0.4.1-0.20200324110947-a37a7636d23e
	github.com/gorilla/mux => github.com/containous/mux v0.0.0-20250523120546-41b6ec3aed59
	github.com/mailgun/minheap => github.com/containous/minheap v0.0.0-20190809180810-6e71eb837595
)

replace github.com/jaguilar/vt100 => github.com/tonistiigi/vt100 v0.0.0-20190402012908-ad4c4a574305

exclude github.com/tencentcloud/tencentcloud-sdk-go v3.0.83+incompatible

replace github.com/cucumber/godog => github.com/cucumber/godog v0.13.0
