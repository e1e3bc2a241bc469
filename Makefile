# Quick start: `make demo` (whole workflow on the built-in demo data) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch and torchvision from the package registry as a matched pair
TORCH_PAIR := torch==2.15.0 torchvision==0.29.2
CORES ?= all

.PHONY: demo test browser slurm bench lint fmt clean

# each benchmark writes bench/results/<name>.json (a flat object of figures)
BENCHES := loader cache dag train_step explain slurm

$(BIN)/snakemake: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install $(TORCH_PAIR)
	$(BIN)/pip install -e ".[test]"
	touch $@

demo: $(BIN)/snakemake
	$(BIN)/snakemake results/report.html --cores $(CORES) --resources gpu=1

# one worker per core, a test file per worker at a time (the workflow tests share a module fixture)
test: $(BIN)/snakemake browser slurm
	$(BIN)/python -m pytest -n auto --dist loadfile

# headless Chromium for the report test: Debian's chromium + chromium-driver (root needed; without
# them that one test is skipped and says why)
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      chromium chromium-driver >/dev/null; \
	  else echo "chromium not installed and not root: the report's browser test will be skipped"; fi; \
	fi

# a single-node SLURM for the cluster test and benchmark: Debian's slurm-wlm + munge (root needed;
# without them those are skipped and say why)
slurm:
	@if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      slurm-wlm munge >/dev/null; \
	  else echo "slurm-wlm/munge not installed and not root: the SLURM test and benchmark will be skipped"; fi; \
	fi

bench: $(BIN)/snakemake slurm
	cd bench && for name in $(BENCHES); do ../$(BIN)/python $$name.py || exit 1; done

lint: $(BIN)/snakemake
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check .

fmt: $(BIN)/snakemake
	$(BIN)/snakefmt .

clean:
	rm -rf results resources/demo .snakemake
