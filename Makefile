# The two commands: `make demo` and `make test` (both set everything up on a fresh Debian/Ubuntu box).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-pg bench setup sysdeps clean screenshots spark-jars i18n spark-cluster spark-cluster-stop

ENGINE ?= duckdb

# `make demo ENGINE=spark TWH_SPARK_MASTER=spark://…` runs it on a cluster; when that is the one
# `make spark-cluster` started, its shared secret comes from $(SPARK_CLUSTER)/cluster.env.
demo: setup
	$(if $(filter spark,$(ENGINE)),$(MAKE) spark-jars,)
	@if [ -n "$$TWH_SPARK_MASTER" ] && [ -f $(SPARK_CLUSTER)/cluster.env ] && \
	    grep -qxF "TWH_SPARK_MASTER=$$TWH_SPARK_MASTER" $(SPARK_CLUSTER)/cluster.env; then \
	  export TWH_SPARK_AUTH_SECRET="$$(sed -n 's/^TWH_SPARK_AUTH_SECRET=//p' $(SPARK_CLUSTER)/cluster.env)"; fi; \
	echo "TWH_ENGINE=$(ENGINE) $(BIN)/twh demo --home var/demo-warehouse"; \
	TWH_ENGINE=$(ENGINE) $(BIN)/twh demo --home var/demo-warehouse

# A local Spark standalone cluster for people: a master and $(SPARK_WORKERS) workers, separate JVMs on
# loopback, started from pyspark's own launcher (sandbox/engines/spark_cluster.py); it keeps running
# until `make spark-cluster-stop`. Its URL goes to $(SPARK_CLUSTER)/master-url, its settings (the shared
# secret too, mode 0600) to $(SPARK_CLUSTER)/cluster.env. SPARK_CONNECT=1 adds a Spark Connect server on
# it (TWH_SPARK_REMOTE and its token, in the same file).
SPARK_CLUSTER ?= var/spark-cluster
SPARK_WORKERS ?= 2
spark-cluster: spark-jars
	$(BIN)/python -m sandbox.engines.spark_cluster up --root $(SPARK_CLUSTER) --workers $(SPARK_WORKERS) \
	  $(if $(filter 1,$(SPARK_CONNECT)),--connect,)
	@echo "master URL: $$(cat $(SPARK_CLUSTER)/master-url)"

spark-cluster-stop:
	$(BIN)/python -m sandbox.engines.spark_cluster down --root $(SPARK_CLUSTER)

test: setup spark-jars
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The tests that use the catalog, against a throwaway PostgreSQL (needs the postgresql package).
test-pg: setup
	$(BIN)/python -m pytest -q --database postgres $(PYTEST_ARGS)

# The figures of bench/RESULTS.md: each run's raw numbers go to bench/out/<name>-<time>.json, then the
# table is rewritten from the newest of each (about 15 min on a quiet 2-core machine). One benchmark or
# a bigger size: make bench BENCH_ARGS="gate --rows 10000000 --repeat 7", BENCH_ARGS="ingest --size 1G",
# BENCH_ARGS="utility", BENCH_ARGS="spark" (see python bench/run.py --help).
bench: setup
	$(BIN)/python bench/run.py --results bench/RESULTS.md $(BENCH_ARGS)

# PNGs of the main pages (steward queue, export review, audit log, job replay, ...) for a reviewer, in
# each language: var/screenshots/en/*.png and var/screenshots/zh-CN/*.png.
screenshots: setup
	$(BIN)/python tests/interfaces/web/screenshots.py var/screenshots

# The interface's message catalogue (Babel): extract what the code and templates say (twh.pot), merge it
# into the Chinese catalogue (translate the new or changed entries there: tests/i18n fails on an empty
# one), and compile the .mo the application loads. The .mo is committed, so a fresh clone runs as is.
LOCALES := sandbox/i18n/locale
i18n: $(STAMP)
	$(BIN)/pybabel extract -F sandbox/i18n/babel.cfg -k _ -k N_ -o $(LOCALES)/twh.pot --project "Training Warehouse" --version 0.1.0 \
	  --no-location --sort-output --omit-header .
	$(BIN)/pybabel update -i $(LOCALES)/twh.pot -d $(LOCALES) -D twh -l zh_CN --width 120 \
	  --ignore-obsolete --no-fuzzy-matching
	$(BIN)/pybabel compile -d $(LOCALES) -D twh --statistics

setup: sysdeps $(STAMP)

# delta-spark's JARs, resolved from Maven Central by Spark's Ivy once into the venv (sandbox/engines/spark.py).
SPARK_STAMP := $(VENV)/share/twh-spark-ivy/.resolved
JARS := $(VENV)/share/twh-jars
S3A_STAMP := $(JARS)/s3a/.resolved
S3PROXY_JAR := $(JARS)/s3proxy-2.6.0-jar-with-dependencies.jar
spark-jars: setup $(SPARK_STAMP) $(S3A_STAMP) $(S3PROXY_JAR)
$(SPARK_STAMP): $(STAMP)
	$(BIN)/python -m sandbox.engines.spark
	@touch $@

# The S3A connector for s3:// tables on Spark (hadoop-aws 3.5.0, matching pyspark's Hadoop client, and the
# AWS SDK modules it uses; sandbox/engines/maven/s3a/pom.xml), and the tests' S3-compatible server (s3proxy),
# from Maven Central by Maven into the venv (sandbox.engines.spark.jars_dir). What pyspark already ships
# (netty, httpclient, commons-*, slf4j) is left out.
$(S3A_STAMP): sandbox/engines/maven/s3a/pom.xml | $(STAMP)
	@command -v mvn >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing maven (apt-get)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven) >/dev/null; \
	  else \
	    echo "resolving the S3A JARs needs Maven: sudo apt-get install maven" >&2; exit 1; \
	  fi; }
	rm -rf $(JARS)/s3a
	mvn -q -B -f sandbox/engines/maven/s3a/pom.xml dependency:copy-dependencies \
	  -DoutputDirectory=$(abspath $(JARS)/s3a) \
	  -DexcludeGroupIds=io.netty,org.apache.httpcomponents,commons-logging,commons-codec,org.slf4j,commons-io,org.apache.commons
	@touch $@
$(S3PROXY_JAR): | $(S3A_STAMP)
	mvn -q -B dependency:copy -Dartifact=org.gaul:s3proxy:2.6.0:jar:jar-with-dependencies \
	  -DoutputDirectory=$(abspath $(JARS))

# System packages: bubblewrap isolates jobs and libseccomp2 compiles their system-call allow-list (through
# pyseccomp); chromium runs the browser tests (never `playwright install`). Installed when missing (as root
# with apt-get), otherwise a clear message says what to install.
sysdeps:
	@{ command -v bwrap >/dev/null 2>&1 && PATH="$$PATH:/sbin:/usr/sbin" ldconfig -p | grep -q 'libseccomp\.so\.2 '; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing bubblewrap and libseccomp2 (apt-get)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap libseccomp2) >/dev/null; \
	  else \
	    echo "bubblewrap and libseccomp2 are required to isolate jobs: sudo apt-get install bubblewrap libseccomp2" >&2; exit 1; \
	  fi; }
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium and a CJK font for the browser tests (apt-get)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei) >/dev/null; \
	  else \
	    echo "the browser tests need Debian's chromium: sudo apt-get install chromium fonts-wqy-microhei" >&2; exit 1; \
	  fi; }
	@command -v java >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing a Java runtime for the spark engine (apt-get)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless) >/dev/null; \
	  else \
	    echo "the spark engine needs Java 17+: sudo apt-get install openjdk-17-jre-headless" >&2; exit 1; \
	  fi; }
	@command -v setpriv >/dev/null 2>&1 && command -v prlimit >/dev/null 2>&1 || { \
	  echo "setpriv and prlimit (package util-linux) are required" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required"'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# compat: the editable install as a plain path in a .pth file; the default, an import-hook
	# finder, costs ~12 ms of every Python start (every twh command, every job run outside the sandbox)
	$(BIN)/python -m pip install -q -e '.[test,train,spark,syft]' --config-settings editable_mode=compat
	@touch $(STAMP)

clean:
	rm -rf var/demo-warehouse bench/out .pytest_cache
