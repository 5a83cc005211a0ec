# tests/xen/lib.sh: host-side functions of the real-Xen rig (sourced by
# run.sh). Builds the dom0 initramfs from Debian packages only:
#
#   rootfs-KEY/           debootstrap tree, cached (KEY: package list,
#                         suite, mirror, recipe version)
#   rootfs-KEY.cpio       that tree packed (newc), cached
#   modules-KVER-KEY.cpio the dom0 kernel's modules we need, with their
#                         dependencies, depmod'ed, cached
#   overlay.cpio          per run: /init, helpers, scenarios, the guest's
#                         kernel + initramfs, the tandem binaries
#
# dom0.cpio = the three concatenated (the kernel unpacks concatenated
# newc archives in order; later files win).
# shellcheck shell=bash

RIG_RECIPE=3   # bump when the rootfs recipe below changes (new cache key)
RIG_SUITE=${XEN_RIG_SUITE:-bookworm}
# Packages of the dom0 root file system (debootstrap --include).
RIG_DOM0_PKGS="xen-utils-4.17 iproute2 kmod procps iputils-ping
  netcat-openbsd libevent-2.1-7 libevent-pthreads-2.1-7 libyajl2
  libunicorn2 libnetfilter-queue1 libmnl0 libnl-3-200 libnl-route-3-200
  iptables libnbd0 nbdkit nbd-client
  ${XEN_RIG_EXTRA_PKGS:-}"
# Kernel modules dom0 may load (plus their dependencies).
RIG_MODULES="xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs
  xen-blkback xen-netback xen-pciback sch_plug sch_ingress sch_prio
  sch_netem ifb act_mirred cls_u32 cls_matchall nbd bridge veth dummy tun
  loop virtio_pci virtio-rng virtio_blk virtio_net
  br_netfilter nfnetlink_queue xt_NFQUEUE nft_queue nft_compat xt_physdev
  xt_comment iptable_mangle ip6table_mangle
  ${XEN_RIG_EXTRA_MODULES:-}"

now() { echo "$EPOCHREALTIME"; }
# elapsed START: seconds since START, one decimal
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
say() { echo "xen-rig: $*"; }
die() { echo "FAIL: xen-rig: $*"; exit 1; }

# Phase bookkeeping: phase_begin NAME; ...; phase_end NAME
declare -A PHASE_T0=()
PHASES=()
declare -A PHASE_S=()
phase_begin() { PHASE_T0[$1]=$EPOCHREALTIME; say "phase $1 ..."; }
phase_end() {
  local s; s=$(elapsed "${PHASE_T0[$1]}")
  PHASES+=("$1"); PHASE_S[$1]=$s
  say "phase $1 took ${s}s${2:+ ($2)}"
}

# The Debian mirror this machine's apt uses (deb822 .sources first, then
# one-line sources.list); XEN_RIG_MIRROR overrides.
rig_mirror() {
  if [ -n "${XEN_RIG_MIRROR:-}" ]; then echo "$XEN_RIG_MIRROR"; return; fi
  local f m
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    # first stanza whose Suites has the suite itself (not -security)
    m=$(awk -v s="$RIG_SUITE" '
      /^[[:space:]]*$/ { if (u != "" && ok && deb) { print u; done=1; exit } u=""; ok=0; deb=0; next }
      /^Types:/ { for (i = 2; i <= NF; i++) if ($i == "deb") deb=1 }
      /^URIs:/ { u=$2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) ok=1 }
      /^Enabled:[[:space:]]*no/ { deb=0 }
      END { if (!done && u != "" && ok && deb) print u }' "$f")
    [ -n "$m" ] && { echo "$m"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    m=$(awk -v s="$RIG_SUITE" '$1 == "deb" {
          i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
          if ($(i+1) == s) { print $i; exit } }' "$f")
    [ -n "$m" ] && { echo "$m"; return; }
  done
  return 1
}

rig_rootfs_key() {
  local mirror=$1
  printf '%s\n' "recipe=$RIG_RECIPE" "suite=$RIG_SUITE" "mirror=$mirror" \
    "pkgs=$(echo $RIG_DOM0_PKGS | tr ' ' '\n' | sort -u | tr '\n' ,)" |
    sha256sum | cut -c1-16
}

# build_rootfs CACHE: sets ROOTFS_CPIO (cached debootstrap tree, packed)
build_rootfs() {
  local cache=$1 mirror key dir inc
  mirror=$(rig_mirror) || die "no Debian mirror for $RIG_SUITE found in /etc/apt/sources.list{,.d} (set XEN_RIG_MIRROR)"
  key=$(rig_rootfs_key "$mirror")
  dir=$cache/rootfs-$key
  ROOTFS_CPIO=$cache/rootfs-$key.cpio
  if [ -f "$dir/.rig-complete" ] && [ -f "$ROOTFS_CPIO" ]; then
    say "debootstrap: cached $dir (key $key)"
    ROOTFS_CACHED=1
    return 0
  fi
  ROOTFS_CACHED=0
  if [ ! -f "$dir/.rig-complete" ]; then
    inc=$(echo $RIG_DOM0_PKGS | tr ' ' ,)
    rm -rf "$dir.tmp"
    say "debootstrap --variant=minbase --include=$inc $RIG_SUITE $mirror"
    if ! debootstrap --variant=minbase --include="$inc" "$RIG_SUITE" \
        "$dir.tmp" "$mirror" >"$cache/debootstrap-$key.log" 2>&1; then
      tail -30 "$cache/debootstrap-$key.log"
      [ -f "$dir.tmp/debootstrap/debootstrap.log" ] && tail -30 "$dir.tmp/debootstrap/debootstrap.log"
      die "debootstrap failed (log: $cache/debootstrap-$key.log)"
    fi
    # Trim what dom0 never reads (keeps the initramfs, hence dom0's RAM, small).
    rm -rf "$dir.tmp"/usr/share/doc/* "$dir.tmp"/usr/share/man/* \
      "$dir.tmp"/usr/share/info/* "$dir.tmp"/usr/share/locale/* \
      "$dir.tmp"/var/cache/apt/*.bin "$dir.tmp"/var/cache/apt/archives/*.deb \
      "$dir.tmp"/var/lib/apt/lists/*_Packages "$dir.tmp"/debootstrap
    printf '%s\n' "key=$key" "mirror=$mirror" "pkgs=$RIG_DOM0_PKGS" \
      "built=$(date -u +%FT%TZ)" >"$dir.tmp/.rig-complete"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
    # Older trees of other keys: keep the cache from growing without bound.
    local old
    for old in "$cache"/rootfs-*; do
      case $old in "$dir"|"$dir.cpio") ;; *) rm -rf "$old" ;; esac
    done
  fi
  (cd "$dir" && find . -path ./.rig-complete -prune -o -print |
    cpio -o -H newc --quiet) >"$ROOTFS_CPIO.tmp" || die "cpio of $dir failed"
  mv "$ROOTFS_CPIO.tmp" "$ROOTFS_CPIO"
}

# The dom0 (and guest) kernel: the one linux-image-amd64 installed.
rig_kernel() {
  local v
  v=$(dpkg-query -W -f='${Depends}\n' linux-image-amd64 2>/dev/null |
    sed -n 's/.*linux-image-\([0-9][^ ,]*\).*/\1/p')
  [ -n "$v" ] && [ -f "/boot/vmlinuz-$v" ] && [ -d "/lib/modules/$v" ] ||
    v=$(ls /boot/vmlinuz-*-amd64 2>/dev/null | sed 's|.*/vmlinuz-||' | sort -V | tail -1)
  [ -n "$v" ] && [ -f "/boot/vmlinuz-$v" ] && [ -d "/lib/modules/$v" ] ||
    die "no Debian kernel in /boot and /lib/modules (install linux-image-amd64: tests/xen/deps.sh)"
  KVER=$v
  KERNEL=/boot/vmlinuz-$v
}

# build_modules CACHE: sets MODULES_CPIO
build_modules() {
  local cache=$1 key dir m files
  key=$(echo "$KVER $RIG_MODULES" | sha256sum | cut -c1-12)
  MODULES_CPIO=$cache/modules-$KVER-$key.cpio
  [ -f "$MODULES_CPIO" ] && { say "modules: cached $MODULES_CPIO"; return 0; }
  dir=$(mktemp -d "$cache/modules.XXXXXX")
  for m in $RIG_MODULES; do
    # "insmod /lib/modules/.../x.ko.xz" lines, or "builtin x"
    modprobe -S "$KVER" --show-depends "$m" 2>/dev/null |
      awk '$1 == "insmod" { print $2 }'
    modprobe -S "$KVER" --show-depends "$m" >/dev/null 2>&1 ||
      say "warning: module $m not found for $KVER"
  done | sort -u >"$dir/list"
  while read -r f; do
    mkdir -p "$dir/root$(dirname "$f")" && cp "$f" "$dir/root$f"
  done <"$dir/list"
  for f in modules.builtin modules.builtin.modinfo modules.order; do
    [ -f "/lib/modules/$KVER/$f" ] && cp "/lib/modules/$KVER/$f" "$dir/root/lib/modules/$KVER/"
  done
  # Debian's bookworm rootfs: /lib -> usr/lib; the archive must not carry a
  # real /lib directory, so place the tree under usr/lib.
  mkdir -p "$dir/root/usr"
  mv "$dir/root/lib" "$dir/root/usr/lib"
  depmod -b "$dir/root/usr" "$KVER" || die "depmod failed"
  (cd "$dir/root" && find . | cpio -o -H newc --quiet) >"$MODULES_CPIO.tmp" &&
    mv "$MODULES_CPIO.tmp" "$MODULES_CPIO" || die "cpio of modules failed"
  say "modules: $(wc -l <"$dir/list") files for $KVER"
  rm -rf "$dir"
}

# build_guest_initrd OUT: busybox-static + the guest's /init, gzip'd newc
build_guest_initrd() {
  local out=$1 d
  d=$(mktemp -d)
  mkdir -p "$d/bin" "$d/sbin" "$d/proc" "$d/sys" "$d/dev" "$d/tmp" "$d/run"
  cp /bin/busybox "$d/bin/busybox" || die "no /bin/busybox (busybox-static)"
  ln -s busybox "$d/bin/sh"
  install -m 0755 "$RIG_DIR/guest/init" "$d/init"
  # netfront, for scenarios that give the guest a vif (rig.ip=)
  mkdir -p "$d/lib"
  cp "/lib/modules/$KVER/kernel/drivers/net/xen-netfront.ko" "$d/lib/" 2>/dev/null ||
    say "warning: no xen-netfront.ko for $KVER: guests get no network"
  # blkfront and ext4, for scenarios that give the guest a disk (rig.disk=),
  # in load order: /lib/disk/NN-name.ko
  local m i=10 f
  mkdir -p "$d/lib/disk"
  for m in xen-blkfront ext4; do
    modprobe -S "$KVER" --show-depends "$m" 2>/dev/null | awk '$1 == "insmod" { print $2 }'
  done | awk '!seen[$0]++' | while read -r f; do
    case $f in
      *.ko) cp "$f" "$d/lib/disk/$i-$(basename "$f")" ;;
      *.ko.xz) xz -dc "$f" >"$d/lib/disk/$i-$(basename "$f" .xz)" ;;
      *) continue ;;
    esac
    i=$((i + 1))
  done
  [ -n "$(ls "$d/lib/disk")" ] || say "warning: no blkfront/ext4 modules for $KVER: guests get no disk"
  (cd "$d" && find . | cpio -o -H newc --quiet) | gzip -1 >"$out" ||
    die "guest initramfs failed"
  rm -rf "$d"
}

# copy_with_libs ROOT FILE DESTDIR: copy an ELF executable and any shared
# library it needs that the dom0 tree lacks (host and dom0 are both
# Debian $RIG_SUITE, so the host's libraries fit).
copy_with_libs() {
  local root=$1 f=$2 dest=$3 lib
  mkdir -p "$root$dest" && cp "$f" "$root$dest/"
  ldd "$f" 2>/dev/null | awk '/=> \// { print $3 }' | while read -r lib; do
    [ -e "$ROOTFS_DIR$lib" ] || [ -e "$ROOTFS_DIR/usr$lib" ] ||
      [ -e "$root/usr/local/lib/$(basename "$lib")" ] || {
        mkdir -p "$root/usr/local/lib"
        cp -L "$lib" "$root/usr/local/lib/"
      }
  done
}

# build_overlay OUT WORK: /init, /rig/{helpers,scenarios,guest,bin}, tandem
build_overlay() {
  local out=$1 work=$2 o=$2/overlay f rel
  rm -rf "$o"; mkdir -p "$o/rig/scenarios" "$o/rig/guest" "$o/rig/bin" \
    "$o/etc/ld.so.conf.d"
  install -m 0755 "$RIG_DIR/dom0/init" "$o/init"
  install -m 0644 "$RIG_DIR/dom0/helpers.sh" "$o/rig/helpers.sh"
  install -m 0755 "$RIG_DIR/dom0/fakessh" "$o/rig/bin/fakessh"
  install -m 0755 "$RIG_DIR/dom0/plugctl" "$o/rig/bin/plugctl"
  install -m 0755 "$RIG_DIR/dom0/tstamp" "$o/rig/bin/tstamp"
  install -m 0755 "$RIG_DIR/dom0/remus-stats" "$o/rig/bin/remus-stats"
  for f in "$RIG_DIR"/scenarios/*.sh; do install -m 0755 "$f" "$o/rig/scenarios/"; done
  install -m 0644 "$RIG_DIR/guest/guest.cfg.in" "$o/rig/guest/guest.cfg.in"
  cp "$KERNEL" "$o/rig/guest/vmlinuz"
  build_guest_initrd "$o/rig/guest/initrd.gz"
  printf '%s\n' "${SCENARIOS[@]}" >"$o/rig/scenarios.list"
  {
    echo "RIG_SCENARIO_TIMEOUT=$SCENARIO_TIMEOUT"
    echo "RIG_TOTAL_TIMEOUT=$TOTAL_TIMEOUT"
    echo "RIG_CPU=$CPU"
    echo "RIG_TANDEM=${TANDEM_BUILD:+1}"
  } >"$o/rig/config"
  if [ -n "$TANDEM_BUILD" ]; then
    # Every ELF executable of the build tree, at its relative path under
    # /opt/tandem/build; tandemd and xl-tandem also on PATH (/usr/local/sbin).
    ROOTFS_DIR=${ROOTFS_CPIO%.cpio}
    (cd "$TANDEM_BUILD" && find . -type f -perm -u+x ! -name '*.so*' \
        ! -path './autom4te.cache/*' -print) |
      while read -r rel; do
        head -c4 "$TANDEM_BUILD/$rel" | grep -q ELF || continue
        copy_with_libs "$o" "$TANDEM_BUILD/$rel" "/opt/tandem/build/$(dirname "$rel")"
      done
    # the nbdkit plugin (a shared object nbdkit loads)
    f=libs/blkrep/nbdkit-tandem-plugin.so
    [ -f "$TANDEM_BUILD/$f" ] &&
      copy_with_libs "$o" "$TANDEM_BUILD/$f" "/opt/tandem/build/$(dirname "$f")"
    mkdir -p "$o/usr/local/sbin"
    for f in daemon/tandemd xl-plugin/xl-tandem; do
      [ -f "$o/opt/tandem/build/$f" ] &&
        ln -sf "/opt/tandem/build/$f" "$o/usr/local/sbin/$(basename "$f")"
    done
    # the source tree's scripts (tests/, man/) for scenarios that want them
    mkdir -p "$o/opt/tandem/src"
    (cd "$RIG_TOP" && tar cf - --exclude='tests/xen' tests/tools tests/integration \
      2>/dev/null) | (cd "$o/opt/tandem/src" && tar xf -) 2>/dev/null || true
    echo /usr/local/lib >"$o/etc/ld.so.conf.d/tandem-rig.conf"
    say "tandem: $(find "$o/opt/tandem/build" -type f | wc -l) executables from $TANDEM_BUILD"
  fi
  (cd "$o" && find . | cpio -o -H newc --quiet) >"$out" || die "overlay cpio failed"
}
