# Thin wrapper: deps, build, test, demo. The real build is CMake.
BUILD ?= build
TYPE ?= Release
PREFIX ?= /usr/local

.PHONY: all deps build test demo bench bench-fds bench-cow bench-predump bench-migrate bench-shapes clean format install install-criu-alias

all: build

deps:
	./scripts/install-deps.sh

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(TYPE) -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	cmake --build $(BUILD) -j$$(nproc)

# cryo into $(PREFIX)/sbin and cryo(8) into $(PREFIX)/share/man/man8 (DESTDIR for staging).
install: build
	DESTDIR=$(DESTDIR) cmake --install $(BUILD) --prefix $(PREFIX)

# Also a criu symlink, for tools that run criu by name.
install-criu-alias: install
	ln -sfn cryo $(DESTDIR)$(PREFIX)/sbin/criu

test: build
	cd $(BUILD) && ctest --output-on-failure

demo: build
	./scripts/demo.sh $(BUILD)/cryo

bench: build
	./bench/run.sh $(BUILD)/cryo

bench-fds: build
	./bench/fds.sh $(BUILD)/cryo

bench-cow: build
	./bench/cow.sh $(BUILD)/cryo

bench-predump: build
	./bench/predump.sh $(BUILD)/cryo

bench-migrate: build
	./bench/migrate.sh $(BUILD)/cryo

bench-shapes: build
	./bench/shapes.sh $(BUILD)/cryo

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD)
