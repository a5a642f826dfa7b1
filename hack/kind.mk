# Targets for people with Docker and kind: build the image, run it in a local kind cluster
# with the sandbox Google, and drive one consent end to end. Included by the Makefile.
# Not run on the build machine (no Docker there), except `image`, which builds with buildah
# where no Docker engine runs; the node tier (hack/node.mk) runs the manifests there.

KIND_VERSION := v0.33.0
KIND_CLUSTER ?= google-token-operator
LOCALBIN := $(CURDIR)/bin
# Pinned like every other tool: built once from the Go module proxy into ./bin.
KIND := $(LOCALBIN)/kind-$(KIND_VERSION)
KUBECTL ?= kubectl
IMAGE ?= google-token-operator:dev
SANDBOX_IMAGE ?= google-token-sandbox:dev
OPERATOR_NS := google-token-operator
EXAMPLES_NS := reviews-demo

.PHONY: image kind-up kind-down kind-load deploy undeploy e2e-kind

$(KIND):
	mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/kind@$(KIND_VERSION)
	mv $(LOCALBIN)/kind $@

image: ## Build google-token-operator:dev and google-token-sandbox:dev: docker, else buildah (no daemon)
	@if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then \
	  docker build -t $(IMAGE) . && docker build --target sandbox -t $(SANDBOX_IMAGE) .; \
	else \
	  echo "no Docker engine: building with buildah (make node-images)"; \
	  $(MAKE) --no-print-directory node-images; \
	fi

kind-up: $(KIND) ## Create the kind cluster (kind pinned in ./bin, built with go install)
	@if $(KIND) get clusters | grep -qx '$(KIND_CLUSTER)'; then \
	  echo "kind cluster $(KIND_CLUSTER) already exists"; \
	else \
	  $(KIND) create cluster --name $(KIND_CLUSTER) --wait 120s; \
	fi

kind-down: $(KIND) ## Delete the kind cluster
	$(KIND) delete cluster --name $(KIND_CLUSTER)

kind-load: $(KIND) ## Load the images into the kind cluster (after make image)
	$(KIND) load docker-image $(IMAGE) $(SANDBOX_IMAGE) --name $(KIND_CLUSTER)

deploy: ## Install the kind overlay (operator + sandbox Google) into the current kube context
	$(KUBECTL) apply -k manifests/overlays/kind
	$(KUBECTL) -n $(OPERATOR_NS) rollout status deployment/google-sandbox --timeout=120s
	@echo "waiting for an operator replica to lead (Lease google-token-operator) and be Ready"
	@for i in $$(seq 60); do \
	  ready=$$($(KUBECTL) -n $(OPERATOR_NS) get deployment google-token-operator \
	    -o jsonpath='{.status.readyReplicas}'); \
	  [ "$${ready:-0}" -ge 1 ] && exit 0; sleep 2; \
	done; echo "no Ready operator replica after 120 s" >&2; exit 1

undeploy: ## Remove the examples, then the kind overlay (the operator drops its finalizers first)
	$(KUBECTL) delete -k manifests/examples --ignore-not-found --wait=true --timeout=120s
	$(KUBECTL) delete -k manifests/overlays/kind --ignore-not-found

e2e-kind: kind-up image kind-load deploy ## kind end to end: examples, consent via the sandbox, Ready
	$(KUBECTL) apply -k manifests/examples
	@echo "waiting for the consent URL in googleclient/acme"
	@url=; for i in $$(seq 60); do \
	  url=$$($(KUBECTL) -n $(EXAMPLES_NS) get googleclient acme \
	    -o jsonpath='{.status.authorization.url}' 2>/dev/null || true); \
	  [ -n "$$url" ] && break; sleep 2; \
	done; \
	[ -n "$$url" ] || { echo "no consent URL after 120 s" >&2; exit 1; }; \
	echo "waiting for the callback workload the operator starts while consent is pending"; \
	for i in $$(seq 30); do \
	  $(KUBECTL) -n $(OPERATOR_NS) get deployment/google-token-operator-callback >/dev/null 2>&1 && break; \
	  sleep 2; \
	done; \
	$(KUBECTL) -n $(OPERATOR_NS) rollout status deployment/google-token-operator-callback --timeout=120s; \
	$(KUBECTL) -n $(OPERATOR_NS) port-forward svc/google-sandbox 8099:8099 >/dev/null & sandbox_pf=$$!; \
	$(KUBECTL) -n $(OPERATOR_NS) port-forward svc/google-token-operator-callback 8080:80 >/dev/null & callback_pf=$$!; \
	trap 'kill $$sandbox_pf $$callback_pf' EXIT; \
	sleep 3; \
	echo "consenting through the sandbox (auto-approve): $${url%%\?*}?..."; \
	curl --fail --silent --show-error --location --max-time 30 "$$url" | grep -i 'authorized' >/dev/null \
	  || { echo "the callback did not confirm the consent" >&2; exit 1; }
	$(KUBECTL) -n $(EXAMPLES_NS) wait --for=condition=Authorized --timeout=60s googleclient/acme
	$(KUBECTL) -n $(EXAMPLES_NS) wait --for=condition=Ready --timeout=60s googleclient/acme
	$(KUBECTL) -n $(EXAMPLES_NS) wait --for=condition=Ready --timeout=120s branch/old-town branch/harbour
	$(KUBECTL) -n $(EXAMPLES_NS) get googleclients,branches
	@echo "e2e-kind passed: consumer Secrets old-town-google-token and harbour-google-token in $(EXAMPLES_NS)"
