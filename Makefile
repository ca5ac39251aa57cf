# The suite's two entry points (see README): `make demo` and `make test`.
# The virtualenv lives outside the clone so that torch (several GB) is installed once per machine.
VENV ?= $(HOME)/.cache/sector-ai/venv
PY := $(VENV)/bin/python
REQ_HASH := $(shell sha256sum requirements.txt | cut -c1-16)
REQ_STAMP := $(VENV)/.requirements-$(REQ_HASH)
export PY
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: venv vendor services demo stop status test check-deploy bench-inference

venv: $(REQ_STAMP)

$(REQ_STAMP): requirements.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --progress-bar on -r requirements.txt
	@rm -f $(VENV)/.requirements-*
	@touch $@

# Browser libraries (uPlot) from npm's pinned lock file into the apps' static files (deploy/vendor.sh).
vendor:
	deploy/vendor.sh

services:
	REDIS_PERSIST=1 deploy/redis.sh start
	deploy/kafka.sh start

demo: venv vendor services
	$(PY) manage.py migrate --no-input
	$(PY) manage.py collectstatic --no-input -v 0
	$(PY) manage.py services_check
	$(PY) manage.py demo_setup | tee var/demo-logins.txt
	$(PY) manage.py demo_load
	deploy/suite.sh start all
	@echo
	@echo "The suite is up:"
	@echo "  Home (sign in)   http://127.0.0.1:$${WEB_PORT:-8000}/"
	@echo "  Django admin     http://127.0.0.1:$${WEB_PORT:-8000}/admin/"
	@echo "  Support console  http://127.0.0.1:$${WEB_PORT:-8000}/support/   customer widget: /support/widget/"
	@echo "  Sentiment        http://127.0.0.1:$${WEB_PORT:-8000}/sentiment/"
	@echo "  Model registry   http://127.0.0.1:$${WEB_PORT:-8000}/registry/"
	@echo "  API schema       http://127.0.0.1:$${WEB_PORT:-8000}/api/schema/"
	@echo "  Redis 127.0.0.1:$${REDIS_PORT:-6379}   Kafka 127.0.0.1:$${KAFKA_PORT:-9092}   worker, beat, news consumer: deploy/suite.sh status"
	@echo "Demo logins:"
	@grep -v '^{' var/demo-logins.txt
	@echo "Stop everything with: make stop"

stop:
	deploy/suite.sh stop all
	deploy/kafka.sh stop
	deploy/redis.sh stop

status:
	deploy/suite.sh status
	-deploy/redis.sh status
	-deploy/kafka.sh status

test: venv vendor
	deploy/test.sh $(PYTEST_ARGS)

check-deploy: venv
	DJANGO_PROFILE=production DJANGO_ALLOWED_HOSTS=suite.example.com \
	DJANGO_SECRET_KEY=$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(64))') \
	$(PY) manage.py check --deploy --fail-level WARNING

# Benchmarks print their figures and end with one JSON line (docs/PERFORMANCE.md).
bench-inference: venv
	REDIS_PERSIST=1 deploy/redis.sh start
	$(PY) -m pipelines.bench inference
