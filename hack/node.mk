# A real node on this machine, without Docker: the images built with buildah, a kubelet on
# containerd + runc, kube-proxy, CoreDNS and the controllers, around the local control plane
# (hack/devkit/node.py). Needs root. Included by the Makefile.

# Debian's packages the image build and the node use; everything else is built from pinned Go
# modules (hack/kube-binaries, hack/node-binaries) or compiled here (pause).
NODE_APT_PACKAGES := runc containernetworking-plugins buildah mmdebstrap skopeo umoci \
  iptables ipset conntrack iproute2 gcc libc6-dev

.PHONY: node-deps node-binaries node-images node-up node-down e2e-node

# What the node tier needs before its tests run (`make test` has the node tier's fixture build
# the binaries and images, in its worker, beside the other tiers).
NODE_PREREQUISITES := node-deps node-binaries node-images

node-deps: ## Install the Debian packages the image build and the node need (apt-get; root)
	@missing=$$(for package in $(NODE_APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$package 2>/dev/null | grep -q 'ok installed' || echo $$package; \
	done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "the node needs: apt-get install $$missing (as root)" >&2; exit 1; fi; \
	  echo "apt-get install $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

node-binaries: $(WHEEL_STAMP) ## Find or build (once, cached) kubelet, controllers, kube-proxy, containerd, CoreDNS
	$(DEVKIT) $(BIN)/python -m devkit build --node

# Always buildah, even where Docker runs: the node imports the archives this build writes.
node-images: $(WHEEL_STAMP) node-deps ## Build the images for the node with buildah (no Docker engine); prints their sizes
	$(DEVKIT) $(BIN)/python -m devkit image

node-up: $(WHEEL_STAMP) kube-binaries $(NODE_PREREQUISITES) ## Start a single-node cluster in the background; prints export KUBECONFIG=...
	$(DEVKIT) $(BIN)/python -m devkit node-up

node-down: $(WHEEL_STAMP) ## Stop the node and remove anything a node left on this machine
	$(DEVKIT) $(BIN)/python -m devkit node-down

e2e-node: $(WHEEL_STAMP) kube-binaries browser $(NODE_PREREQUISITES) ## The node tier alone: the image and the manifests as pods on a real node
	$(BIN)/python hack/check_leftovers.py --sweep-stale
	$(BIN)/pytest -q -raP tests/node
	$(BIN)/python hack/check_leftovers.py
