# The two commands of the README, plus the benchmarks.
.PHONY: run test bench
run:
	bash scripts/run.sh
test:
	bash scripts/test.sh
bench:
	bash scripts/bench.sh
