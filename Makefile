# The two commands of the README.
.PHONY: demo test

demo:
	@scripts/bootstrap.sh demo
	.venv/bin/bbt demo

test:
	@scripts/test.sh
