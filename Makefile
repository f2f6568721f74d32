# The two commands of the README, plus the benchmarks and the Swift documentation.
.PHONY: run test bench docs
run:
	bash scripts/run.sh
test:
	bash scripts/test.sh
bench:
	bash scripts/bench.sh
docs:
	bash -c 'source scripts/setup.sh && swift package generate-documentation --target Layered --warnings-as-errors'
