# ztna: one GNU Makefile, explicit source lists.
# Honours CC, CFLAGS, CPPFLAGS, LDFLAGS (as dpkg-buildflags sets them).

CC ?= cc
CLANG ?= clang
PKG_CONFIG ?= pkg-config
CFLAGS ?= -O2 -g
WERROR ?=
WARNINGS := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wpointer-arith $(WERROR)
ZCFLAGS := -std=c11 -D_GNU_SOURCE -fPIC -fvisibility=hidden $(WARNINGS) -Ishm -Iztnad
DAEMON_LIBS := $(shell $(PKG_CONFIG) --libs jansson libsystemd 2>/dev/null || echo -ljansson -lsystemd)
CHECK_LIBS := $(shell $(PKG_CONFIG) --libs check 2>/dev/null || echo -lcheck -lsubunit -lm -lrt -lpthread)
ZTNA_LIBS := $(shell $(PKG_CONFIG) --libs jansson libsystemd 2>/dev/null || echo -ljansson -lsystemd)
CURL_LIBS := $(shell $(PKG_CONFIG) --libs libcurl 2>/dev/null || echo -lcurl)
# The public suffix list (libpsl reading Debian's publicsuffix data): a
# tailnet domain and a peers document's domain are checked against it.
PSL_LIBS := $(shell $(PKG_CONFIG) --libs libpsl 2>/dev/null || echo -lpsl)

B := build
T := build/test
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

SHM_SRC := shm/siphash.c shm/reader.c shm/writer.c shm/persist.c
NSS_SRC := nss_ztna/nss-ztna.c
# One folder per part of ztnad (the map: README.md, "The source tree").
ZTNAD_SRC := ztnad/daemon/ztnad.c ztnad/daemon/paths.c ztnad/daemon/map.c ztnad/daemon/sources.c \
	ztnad/daemon/verbs.c ztnad/daemon/reload.c ztnad/daemon/fallback.c \
	ztnad/conf/config.c ztnad/conf/config-keys.c ztnad/conf/config-types.c ztnad/conf/public-suffix.c \
	ztnad/sources/peers.c ztnad/sources/peers-json.c ztnad/sources/sync.c ztnad/sources/controlplane.c \
	ztnad/control/control-protocol.c ztnad/control/control-server.c ztnad/control/peer-json.c \
	ztnad/dns/dns.c ztnad/dns/stub.c ztnad/dns/stub-sockets.c ztnad/dns/stub-tcp.c \
	ztnad/dns/stub-lifetime.c ztnad/dns/stub-tailnet.c ztnad/dns/cache.c ztnad/dns/blocklist.c \
	ztnad/upstream/upstream.c ztnad/upstream/upstream-tls.c ztnad/upstream/upstream-plain.c \
	ztnad/upstream/resolvconf.c \
	ztnad/hostdns/dns-state.c ztnad/hostdns/dns-manager.c \
	ztnad/common/dns-wire.c ztnad/common/read-file.c ztnad/common/write-file.c
ZTNA_SRC := ztnad/cli/ztna.c ztnad/cli/ztna-commands-status.c ztnad/cli/ztna-commands-query.c \
	ztnad/cli/ztna-commands-change.c ztnad/cli/ztna-commands-doctor.c ztnad/cli/ztna-control.c \
	ztnad/cli/ztna-store.c ztnad/cli/ztna-output.c \
	ztnad/cli/doctor.c ztnad/cli/doctor-finding.c ztnad/cli/doctor-nss.c ztnad/cli/doctor-nsswitch.c \
	ztnad/cli/doctor-store.c ztnad/cli/doctor-daemon.c ztnad/cli/doctor-sysdns.c ztnad/cli/doctor-resolved.c \
	ztnad/cli/doctor-stub.c ztnad/cli/doctor-dns.c ztnad/cli/doctor-upstream.c ztnad/cli/doctor-caches.c \
	ztnad/cli/doctor-agreement.c \
	ztnad/control/peer-json.c \
	ztnad/conf/config.c ztnad/conf/config-keys.c ztnad/conf/config-types.c ztnad/conf/public-suffix.c \
	ztnad/sources/controlplane.c ztnad/sources/peers.c ztnad/sources/peers-json.c \
	ztnad/common/read-file.c
HEADERS := $(wildcard shm/*.h nss_ztna/*.h ztnad/*/*.h)

all: $(B)/libnss_ztna.so.2 $(B)/ztnad $(B)/ztna

# ---- release build ----
$(B)/obj/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ZCFLAGS) $(CFLAGS) -c -o $@ $<

$(B)/libshm.a: $(SHM_SRC:%.c=$(B)/obj/%.o)
	$(AR) rcs $@ $^

# Only _nss_ztna_* exported (version script), nothing but libc in NEEDED,
# BIND_NOW so no lazy binding runs inside a caller, nodelete so a
# dlclose() never unmaps code another thread may be running.
$(B)/libnss_ztna.so.2: $(NSS_SRC:%.c=$(B)/obj/%.o) $(B)/libshm.a nss_ztna/nss-ztna.sym
	$(CC) $(CFLAGS) $(LDFLAGS) -shared -Wl,-soname,libnss_ztna.so.2 \
		-Wl,--version-script=nss_ztna/nss-ztna.sym -Wl,-z,nodelete \
		-Wl,-z,now -Wl,-z,relro -Wl,--no-undefined -Wl,--as-needed \
		-o $@ $(NSS_SRC:%.c=$(B)/obj/%.o) $(B)/libshm.a

$(B)/obj/ztnad/conf/example.c: examples/tailnet.json tests/tools/embed.sh
	@mkdir -p $(dir $@)
	sh tests/tools/embed.sh ztna_example_tailnet $< > $@

$(B)/obj/ztnad/conf/example.o: $(B)/obj/ztnad/conf/example.c
	$(CC) $(CPPFLAGS) $(ZCFLAGS) $(CFLAGS) -c -o $@ $<

ZTNAD_OBJ := $(ZTNAD_SRC:%.c=$(B)/obj/%.o) $(B)/obj/ztnad/conf/example.o
$(B)/ztnad: $(ZTNAD_OBJ) $(B)/libshm.a
	$(CC) $(CFLAGS) $(LDFLAGS) -pie -o $@ $^ $(DAEMON_LIBS) $(CURL_LIBS) $(SSL_LIBS) $(URCU_LIBS) $(PSL_LIBS) -lpthread

$(B)/ztna: $(ZTNA_SRC:%.c=$(B)/obj/%.o) $(B)/libshm.a
	$(CC) $(CFLAGS) $(LDFLAGS) -pie -o $@ $^ $(ZTNA_LIBS) $(CURL_LIBS) $(PSL_LIBS) $(SSL_LIBS)

# ---- sanitized test build (never installed, never dlopen'ed by getent) ----
$(T)/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ZCFLAGS) -O1 -g $(SAN) -c -o $@ $<
$(T)/ztnad/conf/example.o: $(B)/obj/ztnad/conf/example.c
	$(CC) $(CPPFLAGS) $(ZCFLAGS) -O1 -g $(SAN) -c -o $@ $<

$(T)/libshm.a: $(SHM_SRC:%.c=$(T)/%.o)
	$(AR) rcs $@ $^

SSL_LIBS := $(shell $(PKG_CONFIG) --libs libssl libcrypto 2>/dev/null || echo -lssl -lcrypto)
URCU_LIBS := $(shell $(PKG_CONFIG) --libs liburcu-memb liburcu-cds 2>/dev/null || echo -lurcu-memb -lurcu-common -lurcu-cds)
TEST_LIBS := $(CHECK_LIBS) $(DAEMON_LIBS) $(CURL_LIBS) $(SSL_LIBS) $(URCU_LIBS) $(PSL_LIBS) -lpthread

# Every part of ztnad and ztna but their main()s, and the NSS module, in one
# archive: a test program links against it and takes the objects it uses,
# so no program lists its dependencies by hand.
PARTS_SRC := $(filter-out ztnad/daemon/ztnad.c ztnad/cli/ztna.c,$(sort $(ZTNAD_SRC) $(ZTNA_SRC))) $(NSS_SRC)
$(T)/libparts.a: $(PARTS_SRC:%.c=$(T)/%.o) $(T)/ztnad/conf/example.o
	rm -f $@
	$(AR) rcs $@ $^

# Test programs: every test-*.c beside its code, and the harnesses under
# tests/harness that integration tests drive. The Check programs among them (those
# including <check.h>) are the unit tests `make test` runs.
TEST_SRC := shm/test-shm.c nss_ztna/test-nss.c $(wildcard ztnad/*/test-*.c) tests/harness/stub-harness.c
UNIT_SRC := $(shell grep -l '<check.h>' $(TEST_SRC))
test_bin = $(T)/$(basename $(notdir $(1)))
define test_program
$(call test_bin,$(1)): $(T)/$(1:.c=.o) $(T)/libparts.a $(T)/libshm.a
	$$(CC) $$(SAN) -o $$@ $$^ $$(TEST_LIBS)
endef
$(foreach s,$(TEST_SRC),$(eval $(call test_program,$(s))))
TEST_BINS := $(foreach s,$(TEST_SRC),$(call test_bin,$(s)))
UNIT_TESTS := $(foreach s,$(UNIT_SRC),$(call test_bin,$(s)))
# The integration tests run by `make test`: every tests/integration/test-*.sh.
# Packaging (tests/packaging), SELinux and the booted system (tests/system)
# have their own targets (deb-test, selinux-check, system-test).
INTEGRATION_TESTS := $(wildcard tests/integration/test-*.sh)

# C getaddrinfo client for the integration tests (uninstrumented: it loads
# the release module).
$(B)/gai-client: tests/harness/gai-client.c
	$(CC) $(CPPFLAGS) $(ZCFLAGS) $(CFLAGS) -o $@ $<

# Publishes a store from a text description, so the glibc tests need no
# daemon (uninstrumented, like the client).
$(B)/publish: tests/harness/publish.c $(B)/libshm.a
	$(CC) $(CPPFLAGS) $(ZCFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $^

# ztnad and ztna themselves under the sanitizers, for the integration tests
# that take them (test-control, and B=build/test/bin for test-reload): a use
# after free or a leak shows in ztnad's log and exit status.
$(T)/bin/ztnad: $(T)/ztnad/daemon/ztnad.o $(T)/libparts.a $(T)/libshm.a
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -o $@ $^ $(TEST_LIBS)
$(T)/bin/ztna: $(T)/ztnad/cli/ztna.o $(T)/libparts.a $(T)/libshm.a
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -o $@ $^ $(TEST_LIBS)
sanitized: $(T)/bin/ztnad $(T)/bin/ztna

check test: all $(TEST_BINS) $(T)/bin/ztnad $(B)/gai-client $(B)/publish
	sh tests/run-tests.sh $(UNIT_TESTS) $(INTEGRATION_TESTS)

# ---- fuzzing (libFuzzer; FUZZ_SECONDS per target) ----
FUZZ_SECONDS ?= 30
FUZZ_FLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Ishm -Iztnad
$(B)/fuzz/fuzz-store: tests/fuzz/fuzz-store.c $(SHM_SRC) $(NSS_SRC)
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_FLAGS) -o $@ $^
$(B)/fuzz/fuzz-peers: tests/fuzz/fuzz-peers.c ztnad/sources/peers.c ztnad/sources/peers-json.c \
		ztnad/common/read-file.c ztnad/conf/public-suffix.c $(SHM_SRC)
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_FLAGS) -o $@ $^ $(DAEMON_LIBS) $(PSL_LIBS)

FUZZ_BINS := $(B)/fuzz/fuzz-store $(B)/fuzz/fuzz-peers
$(B)/fuzz/fuzz-control: tests/fuzz/fuzz-control.c ztnad/control/control-protocol.c ztnad/control/control-server.c
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_FLAGS) -o $@ $^ $(DAEMON_LIBS)
FUZZ_BINS += $(B)/fuzz/fuzz-control
$(B)/fuzz/fuzz-config: tests/fuzz/fuzz-config.c ztnad/conf/config.c ztnad/conf/config-keys.c ztnad/conf/config-types.c ztnad/common/read-file.c ztnad/conf/public-suffix.c
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_FLAGS) -o $@ $^ $(PSL_LIBS)
FUZZ_BINS += $(B)/fuzz/fuzz-config
$(B)/fuzz/fuzz-nsswitch: tests/fuzz/fuzz-nsswitch.c ztnad/cli/doctor-nsswitch.c ztnad/cli/doctor.h
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_FLAGS) $(shell $(PKG_CONFIG) --cflags jansson 2>/dev/null) -o $@ tests/fuzz/fuzz-nsswitch.c ztnad/cli/doctor-nsswitch.c
FUZZ_BINS += $(B)/fuzz/fuzz-nsswitch
$(B)/fuzz/fuzz-doctor-dns: tests/fuzz/fuzz-doctor-dns.c ztnad/cli/doctor-dns.c ztnad/cli/doctor.h
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_FLAGS) -o $@ tests/fuzz/fuzz-doctor-dns.c ztnad/cli/doctor-dns.c
FUZZ_BINS += $(B)/fuzz/fuzz-doctor-dns
# Seeded with the hex packets of tests/data/dns, turned into binary files.
$(B)/fuzz/fuzz-dns: tests/fuzz/fuzz-dns.c ztnad/common/dns-wire.c ztnad/common/dns-wire.h $(wildcard tests/data/dns/*.hex)
	@mkdir -p $(dir $@) $(B)/fuzz/corpus/fuzz-dns
	for f in tests/data/dns/*.hex; do \
		env printf "$$(sed 's/#.*//' $$f | tr -d ' \t\n' | sed 's/../\\x&/g')" \
			>$(B)/fuzz/corpus/fuzz-dns/seed-$$(basename $$f .hex) || exit 1; \
	done
	$(CLANG) $(FUZZ_FLAGS) -Iztnad -o $@ tests/fuzz/fuzz-dns.c ztnad/common/dns-wire.c
FUZZ_BINS += $(B)/fuzz/fuzz-dns
$(B)/fuzz/fuzz-dns-state: tests/fuzz/fuzz-dns-state.c ztnad/hostdns/dns-state.c ztnad/hostdns/dns-state.h ztnad/common/read-file.c ztnad/common/write-file.c
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_FLAGS) -o $@ tests/fuzz/fuzz-dns-state.c ztnad/hostdns/dns-state.c ztnad/common/read-file.c ztnad/common/write-file.c
FUZZ_BINS += $(B)/fuzz/fuzz-dns-state
fuzz: $(FUZZ_BINS)
	sh tests/fuzz/run-fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

# ---- benchmarks ----
$(B)/bench/bench-nss: tests/bench/bench-nss.c $(NSS_SRC) $(B)/libshm.a tests/bench/bench-peers.h $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ZCFLAGS) -O2 -g -o $@ $(filter-out %.h,$^) -lpthread
$(B)/bench/libnss_ztnanoop.so.2: tests/bench/nss-noop.c tests/bench/bench-peers.h
	@mkdir -p $(dir $@)
	$(CC) $(ZCFLAGS) -O2 -shared -Wl,-soname,libnss_ztnanoop.so.2 -o $@ $<
$(B)/bench/bench-gai: tests/bench/bench-gai.c tests/bench/bench-peers.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ZCFLAGS) -O2 -g -o $@ $<

# Pushes and peers-file replacements timed to the first getaddrinfo that
# sees them, against the real ztnad.
$(B)/bench/bench-push: tests/bench/bench-push.c tests/bench/bench-peers.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ZCFLAGS) -O2 -g -o $@ $<

# The peers reader beside jansson's json_loadb (the tree it replaced).
$(B)/bench/bench-parse: tests/bench/bench-parse.c ztnad/sources/peers.c ztnad/sources/peers-json.c \
		ztnad/common/read-file.c ztnad/conf/public-suffix.c $(B)/libshm.a $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ZCFLAGS) -O2 -g -o $@ $(filter %.c %.a,$^) $(ZTNA_LIBS) $(PSL_LIBS)

# The module, and the daemon for its own rows; the packages for the rows
# measured in the booted container (tests/system/bench-system.sh).
bench: $(B)/libnss_ztna.so.2 $(B)/bench/bench-nss $(B)/bench/libnss_ztnanoop.so.2 $(B)/bench/bench-gai \
		$(B)/ztnad $(B)/ztna $(B)/bench/bench-push $(B)/bench/bench-parse deb
	sh tests/bench/run-bench.sh

# ---- installation ----
# DESTDIR stages the tree; nothing is started, reloaded or run on the host
# (no systemctl, systemd-sysusers or ldconfig: packaging does that).
PREFIX ?= /usr
INSTALL ?= install
bindir = $(PREFIX)/bin
sbindir = $(PREFIX)/sbin
mandir = $(PREFIX)/share/man
docdir = $(PREFIX)/share/doc/ztnad
sysconfdir = /etc
# glibc finds NSS modules in the multiarch directories on Debian
# (/lib/<triplet> and /usr/lib/<triplet>, one directory with merged /usr).
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)
libdir = $(PREFIX)/lib$(if $(MULTIARCH),/$(MULTIARCH))
# Debian 12 says /lib/systemd/system; the fallbacks are its values.
systemdsystemunitdir := $(or $(shell $(PKG_CONFIG) --variable=systemdsystemunitdir systemd 2>/dev/null),/lib/systemd/system)
sysusersdir := $(or $(shell $(PKG_CONFIG) --variable=sysusersdir systemd 2>/dev/null),/usr/lib/sysusers.d)
tmpfilesdir := $(or $(shell $(PKG_CONFIG) --variable=tmpfilesdir systemd 2>/dev/null),/usr/lib/tmpfiles.d)
MAN_PAGES := $(wildcard man/*.1 man/*.5 man/*.8)

# The example configuration goes to the documentation, and to /etc only
# where no configuration exists: an operator's file is never overwritten.
install: all
	$(INSTALL) -d $(DESTDIR)$(bindir) $(DESTDIR)$(sbindir) $(DESTDIR)$(libdir) \
		$(DESTDIR)$(systemdsystemunitdir) $(DESTDIR)$(sysusersdir) $(DESTDIR)$(tmpfilesdir) \
		$(DESTDIR)$(sysconfdir)/ztna
	$(INSTALL) -m 0755 $(B)/ztna $(DESTDIR)$(bindir)/ztna
	$(INSTALL) -m 0755 $(B)/ztnad $(DESTDIR)$(sbindir)/ztnad
	$(INSTALL) -m 0644 $(B)/libnss_ztna.so.2 $(DESTDIR)$(libdir)/libnss_ztna.so.2
	for u in ztnad.service ztnad-dns.service ztnad-dns-check.service systemd-resolved-ztna.conf; do \
		sed 's|^\(Exec[A-Za-z]*=[-+]*\)/usr/sbin/ztnad\b|\1$(sbindir)/ztnad|' systemd/$$u >$(B)/$$u || exit 1; \
	done
	$(INSTALL) -m 0644 $(B)/ztnad.service $(B)/ztnad-dns.service $(B)/ztnad-dns-check.service \
		systemd/ztnad.socket systemd/ztnad-dns.path $(DESTDIR)$(systemdsystemunitdir)/
	$(INSTALL) -d $(DESTDIR)$(systemdsystemunitdir)/systemd-resolved.service.d
	$(INSTALL) -m 0644 $(B)/systemd-resolved-ztna.conf \
		$(DESTDIR)$(systemdsystemunitdir)/systemd-resolved.service.d/ztna.conf
	$(INSTALL) -m 0644 systemd/ztna.sysusers $(DESTDIR)$(sysusersdir)/ztna.conf
	$(INSTALL) -m 0644 systemd/ztna.tmpfiles $(DESTDIR)$(tmpfilesdir)/ztna.conf
	for page in $(MAN_PAGES); do \
		$(INSTALL) -d $(DESTDIR)$(mandir)/man$${page##*.} && \
		$(INSTALL) -m 0644 $$page $(DESTDIR)$(mandir)/man$${page##*.}/ || exit 1; \
	done
	if [ -f examples/ztnad.conf ]; then \
		$(INSTALL) -d $(DESTDIR)$(docdir)/examples && \
		$(INSTALL) -m 0644 examples/ztnad.conf $(DESTDIR)$(docdir)/examples/ && \
		{ [ -e $(DESTDIR)$(sysconfdir)/ztna/ztnad.conf ] || \
		  $(INSTALL) -m 0644 examples/ztnad.conf $(DESTDIR)$(sysconfdir)/ztna/ztnad.conf; }; \
	fi

# The units, sysusers.d/tmpfiles.d files and the daemon's sd_notify side.
units-check: $(B)/ztnad $(B)/libnss_ztna.so.2
	bash tests/integration/test-units.sh

demo: all
	sh tests/tools/demo.sh

# ---- Debian packages and the SELinux policy module ----
# The policy module, built with the reference policy's development files
# (selinux-policy-dev) in a copy under $(B): that Makefile writes next to
# its sources.
SELINUX_DEVEL ?= /usr/share/selinux/devel/Makefile
$(B)/selinux/ztnad.pp: selinux/ztnad.te selinux/ztnad.if selinux/ztnad.fc
	@mkdir -p $(B)/selinux
	cp selinux/ztnad.te selinux/ztnad.if selinux/ztnad.fc $(B)/selinux/
	$(MAKE) -C $(B)/selinux -f $(SELINUX_DEVEL) ztnad.pp
selinux: $(B)/selinux/ztnad.pp

# dpkg-buildpackage writes into the parent directory; the files its
# .changes lists are moved to $(B)/deb, then lintian checks them
# (LINTIAN=true skips that).
LINTIAN ?= lintian
deb:
	dpkg-buildpackage -us -uc -b
	rm -rf $(B)/deb && mkdir -p $(B)/deb
	changes=../ztna_$$(dpkg-parsechangelog -SVersion | sed 's/^[0-9]*://')_$$(dpkg-architecture -qDEB_HOST_ARCH).changes && \
	for f in $$(awk '/^Files:/ { on = 1; next } /^[^ ]/ { on = 0 } on { print $$5 }' "$$changes"); do \
		mv "../$$f" $(B)/deb/ || exit 1; \
	done && mv "$$changes" $(B)/deb/
	$(LINTIAN) --fail-on error,warning $(B)/deb/*.changes

# Installs the packages into a throwaway Debian 12 root (debootstrap,
# needs root and the Debian mirror); slow, so not part of "make test".
deb-test: deb
	bash tests/packaging/test-deb.sh

# The packages in a booted Debian 12 container (systemd-nspawn): the
# parts of tests/system/test-system.sh that pass today (docs/system-tests.md).
system-test: deb
	bash tests/system/test-system.sh

# The policy module's rules and labels, checked with setools.
selinux-check: selinux deb
	bash tests/packaging/test-selinux.sh

clean:
	rm -rf $(B)

.PHONY: all check test sanitized fuzz bench demo clean install units-check selinux deb deb-test selinux-check system-test
.DELETE_ON_ERROR:
