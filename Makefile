# Quick start: `make demo` (whole workflow on the built-in demo data) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch and torchvision from the package registry as a matched pair
TORCH_PAIR := torch==2.15.0 torchvision==0.29.2
CORES ?= all

.PHONY: demo test system bench lint fmt clean

# each benchmark writes bench/results/<name>.json (a flat object of figures); gpu needs CUDA and says so without
BENCHES := loader cache dag train_step explain stats_layer probe deploy slurm gpu

$(BIN)/snakemake: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install $(TORCH_PAIR)
	$(BIN)/pip install -e ".[test]"
	touch $@

demo: $(BIN)/snakemake
	$(BIN)/snakemake results/report.html --cores $(CORES) --resources gpu=1

# one worker more than the cores (conftest.py), a test file per worker at a time (workflow tests share one run)
test: $(BIN)/snakemake system
	$(BIN)/python -m pytest -n auto --dist loadfile --durations=30

# Debian packages two kinds of tests need: headless Chromium for the report test, and slurm-wlm + munge
# for the single-node SLURM test and benchmark. Installed with apt when missing and root; otherwise those
# tests are skipped and say why.
SYSTEM_PACKAGES := chromium chromium-driver slurm-wlm munge
system:
	@missing=""; for cmd in chromium chromedriver slurmctld munged; do \
	  command -v $$cmd >/dev/null || missing="$$missing $$cmd"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      $(SYSTEM_PACKAGES) >/dev/null; \
	  else echo "missing:$$missing (not root): the browser and SLURM tests will be skipped"; fi; \
	fi

bench: $(BIN)/snakemake system
	cd bench && for name in $(BENCHES); do ../$(BIN)/python $$name.py || exit 1; done

lint: $(BIN)/snakemake
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check .

fmt: $(BIN)/snakemake
	$(BIN)/snakefmt .

clean:
	rm -rf results resources/demo resources/demo_site_c .snakemake
