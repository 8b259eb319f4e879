# The two commands of the README: `make demo` and `make test`. Everything else is a convenience.
.PHONY: demo test unit setup lint stack-up stack-down stack-status

demo:
	bash scripts/demo.sh $(ARGS)

test:
	bash scripts/test.sh $(ARGS)

# The quick loop: lint, import rules and every test that needs no running service (no stack started).
unit:
	bash scripts/unit.sh $(ARGS)

setup:
	bash scripts/setup.sh

lint: setup
	.venv/bin/ruff check .

stack-up: setup
	.venv/bin/ccas stack up

stack-down:
	.venv/bin/ccas stack down

stack-status:
	.venv/bin/ccas stack status
