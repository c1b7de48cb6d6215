# marginaudit: `make demo` runs the main job, `make test` the tests.
# `make help` lists the targets.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO ?= go
# The demo: a small study on MNIST (10,000 training images, 5 epochs, standard
# and PGD adversarial training, 200 audited images per split), written to
# DEMO_OUT; extra `marginaudit study` flags in DEMO_FLAGS.
DEMO_OUT ?= demo-out
DEMO_FLAGS ?=
# Extra flags for `go test` in `make test`.
TESTFLAGS ?=
# Where `make conformance` writes its report.
CONFORMANCE_REPORT ?= conformance-report.txt
# Duration of each fuzz target in `make fuzz`.
FUZZTIME ?= 30s
# Fuzz targets of `make fuzz`, as space-separated PACKAGE:FuzzName entries,
# e.g. ./onnxgrad:FuzzDecode.
FUZZ_TARGETS ?= ./onnxgrad:FuzzDecode ./internal/npy:FuzzRead ./trainer/dataset:FuzzReadIDXImages ./trainer/dataset:FuzzReadIDXLabels ./trainer/dataset:FuzzReadCIFAR ./trainer/optim:FuzzUnmarshalState ./auditor:FuzzReadRecords ./auditor:FuzzReadConfidence ./auditor:FuzzReadRobust ./auditor/compare:FuzzParseGates
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2

# The onnxruntime library that `make ort` installs and the tests load, unless
# MARGINAUDIT_ORT_LIB already names another one.
ORT_VERSION := 1.30.0
CACHE_HOME := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)
ORT_CACHE_LIB := $(CACHE_HOME)/marginaudit/onnxruntime-$(ORT_VERSION)/libonnxruntime.so.1
MARGINAUDIT_ORT_LIB ?= $(ORT_CACHE_LIB)
export MARGINAUDIT_ORT_LIB

.PHONY: help ort data onnx-testdata lint test conformance demo bench fuzz

help:
	@echo 'make demo   the main job: a small MNIST study (train, audit, report) into $(DEMO_OUT)'
	@echo 'make test   lint (gofmt, go vet, staticcheck) and run all tests'
	@echo 'make ort    install onnxruntime $(ORT_VERSION) as $(ORT_CACHE_LIB)'
	@echo 'make data   fetch MNIST and Fashion-MNIST, linked under $(CACHE_HOME)/marginaudit/data'
	@echo 'make onnx-testdata  install ONNX'"'"'s backend node tests (Debian'"'"'s libonnx-testdata)'
	@echo 'make conformance    run ONNX'"'"'s node tests through onnxgrad, report per op in $(CONFORMANCE_REPORT)'
	@echo 'make lint   gofmt check, go vet, staticcheck'
	@echo 'make bench  run the benchmarks'
	@echo 'make fuzz   run FUZZ_TARGETS for FUZZTIME each'

ort:
	@.ci/install-onnxruntime

data:
	@.ci/install-data

onnx-testdata:
	@.ci/install-onnx-testdata

# gofmt over all Go files except generated ones and testdata.
lint:
	@files=$$(find . -name '*.go' -not -path './.git/*' -not -path '*/testdata/*' -print0 | \
		xargs -0 -r grep -L '^// Code generated .* DO NOT EDIT\.$$' || true); \
	if [[ -n $$files ]]; then \
		bad=$$(gofmt -l $$files); \
		if [[ -n $$bad ]]; then echo "gofmt: these files need formatting (gofmt -w):"; echo "$$bad"; exit 1; fi; \
	fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

test: ort data onnx-testdata lint
	$(GO) test -timeout 30m $(TESTFLAGS) ./...

# The report is written even when the test fails; make then fails too.
conformance: ort onnx-testdata
	@status=0; ONNX_CONFORMANCE_REPORT=$(abspath $(CONFORMANCE_REPORT)) \
		$(GO) test -count=1 -run '^TestONNXConformance$$' ./onnxgrad || status=$$?; \
	cat $(CONFORMANCE_REPORT); exit $$status

demo: ort data
	$(GO) run ./cmd/marginaudit study --data mnist --epochs 5 --train-limit 10000 --n 200 --out $(DEMO_OUT) $(DEMO_FLAGS)

bench: ort
	$(GO) test -run '^$$' -bench . -benchmem ./...

fuzz: ort
	@if [[ -z "$(strip $(FUZZ_TARGETS))" ]]; then echo "fuzz: FUZZ_TARGETS is empty, nothing to fuzz"; fi
	@for target in $(FUZZ_TARGETS); do \
		pkg=$${target%%:*}; name=$${target#*:}; \
		$(GO) test -list "^$$name\$$" "$$pkg" | grep -qx "$$name" || \
			{ echo "fuzz: no fuzz target $$name in $$pkg" >&2; exit 1; }; \
		echo "fuzz: $$name in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 2s "$$pkg"; \
	done
