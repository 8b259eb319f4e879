# The two commands of the README: `make demo` and `make test`. Everything else is a convenience.
.PHONY: demo test setup lint stack-up stack-down stack-status

demo:
	bash scripts/demo.sh $(ARGS)

test:
	bash scripts/test.sh $(ARGS)

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
