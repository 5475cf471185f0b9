# Thin wrapper: deps, build, test, demo. The real build is CMake.
BUILD ?= build
TYPE ?= Release

.PHONY: all deps build test demo bench clean format

all: build

deps:
	./scripts/install-deps.sh

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(TYPE) >/dev/null
	cmake --build $(BUILD) -j$$(nproc)

test: build
	cd $(BUILD) && ctest --output-on-failure

demo: build
	./scripts/demo.sh $(BUILD)/cryo

bench: build
	./bench/run.sh $(BUILD)/cryo

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD)
