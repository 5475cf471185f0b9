#!/usr/bin/python3
"""Check that cryo's .proto schema is wire-compatible with CRIU's.

Usage: proto_compat_check.py PROTO_DIR [PROTOC]

Compiles every PROTO_DIR/*.proto with protoc into a FileDescriptorSet and
compares each message and enum we define against the descriptor with the
same full name in CRIU's python bindings (pycriu.images.*_pb2, the modules
Debian's `crit` decodes images with).

For every field of ours, CRIU must have a field with the same number, name,
type, label and packed-ness (and the same default value and (criu) field options, the
ones crit's --pretty reads, if any); for enum and
message fields the referenced type names must match. Every REQUIRED CRIU field
must also exist in our message, or crit could not parse what we write. Enums must
have exactly the same value names and numbers.

Each message is then also round-tripped on the wire: an instance with every
field set is serialized with our schema, parsed with CRIU's class (which
rejects missing required fields), compared field by field in text form, and
fed through crit's pb2dict converter.

Exits 1 if anything does not match.
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
from google.protobuf import text_format
from google.protobuf.descriptor import FieldDescriptor

TYPE_NAMES = {
    v: k[len("TYPE_"):].lower()
    for k, v in vars(FieldDescriptor).items()
    if k.startswith("TYPE_") and isinstance(v, int)
}
LABEL_NAMES = {
    FieldDescriptor.LABEL_OPTIONAL: "optional",
    FieldDescriptor.LABEL_REQUIRED: "required",
    FieldDescriptor.LABEL_REPEATED: "repeated",
}


def walk_messages(msgs):
    for m in msgs:
        yield m
        yield from walk_messages(m.nested_types)


def walk_enums(file_desc):
    yield from file_desc.enum_types_by_name.values()
    for m in walk_messages(file_desc.message_types_by_name.values()):
        yield from m.enum_types


def load_ours(proto_dir, protoc):
    # protoc runs inside proto_dir, so make both paths independent of our cwd.
    proto_dir = os.path.abspath(proto_dir)
    if os.sep in protoc:
        protoc = os.path.abspath(protoc)
    protos = sorted(glob.glob(os.path.join(proto_dir, "*.proto")))
    if not protos:
        sys.exit("no .proto files in %s" % proto_dir)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cryo.desc")
        cmd = [protoc, "--include_imports", "--descriptor_set_out=" + out,
               "-I", proto_dir] + [os.path.basename(p) for p in protos]
        subprocess.run(cmd, check=True, cwd=proto_dir)
        with open(out, "rb") as f:
            fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    # A private pool, so CRIU's identically named types in the default pool
    # do not clash with ours.
    pool = descriptor_pool.DescriptorPool()
    files = []
    for fdp in fds.file:  # --include_imports orders dependencies first
        pool.Add(fdp)
    for fdp in fds.file:
        files.append(pool.FindFileByName(fdp.name))
    return files


def load_criu():
    import pycriu.images.pb  # noqa: F401 pylint: disable=unused-import,import-outside-toplevel
    import pycriu.rpc_pb2  # noqa: F401 pylint: disable=unused-import,import-outside-toplevel
    # (pycriu.images.pb imports every *_pb2 module, which we then collect; rpc_pb2 is the RPC.)

    msgs, enums = {}, {}
    for name, mod in sorted(sys.modules.items()):
        if not ((name.startswith("pycriu.images.") and name.endswith("_pb2")) or
                name == "pycriu.rpc_pb2"):
            continue
        fd = mod.DESCRIPTOR
        for m in walk_messages(fd.message_types_by_name.values()):
            msgs[m.full_name] = m
        for e in walk_enums(fd):
            enums[e.full_name] = e
    return msgs, enums


def is_packed(f):
    opts = f.GetOptions()
    return bool(opts.HasField("packed") and opts.packed)


# Messages we must name differently, because CRIU's name is also a C struct that the
# generated C++ class would clash with: our name -> CRIU's. The wire format is unchanged.
RENAMED = {
    "criu_timeval": "timeval",
    "criu_timespec": "timespec",
}


def ref_name(f):
    if f.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
        return RENAMED.get(f.message_type.full_name, f.message_type.full_name)
    if f.type == FieldDescriptor.TYPE_ENUM:
        return f.enum_type.full_name
    return None


def describe(f):
    s = "%s %s %s = %d" % (LABEL_NAMES[f.label], ref_name(f) or TYPE_NAMES[f.type],
                           f.name, f.number)
    if is_packed(f):
        s += " [packed]"
    if f.has_default_value:
        s += " [default=%r]" % (f.default_value,)
    return s


# Fields that newer CRIU releases added after Debian's CRIU 3.17 (whose schema this test
# reads): (message, field number) -> what it is. They are checked by name only.
# Fields cryo adds to CRIU's messages, with numbers far above CRIU's: CRIU's tools skip
# them as unknown fields. (message, field number) -> name.
CRYO_EXTENSIONS = {
    ("eventpoll_tfd_entry", 1000): "cryo_target_id",
    ("unix_sk_entry", 1000): "cryo_peer_closed",
    ("inet_sk_entry", 1000): "cryo_tcp_nodelay",
    ("inet_sk_entry", 1001): "cryo_tcp_cork",
    ("inet_sk_entry", 1002): "cryo_udp_cork",
    ("task_kobj_ids_entry", 1000): "cryo_time_for_children_ns_id",
    ("task_kobj_ids_entry", 1001): "cryo_pid_for_children_ns_id",
    ("pstree_entry", 1000): "cryo_ns_pid",
    ("pstree_entry", 1001): "cryo_ns_tid",
    ("vma_entry", 1000): "cryo_lock_onfault",
    ("vma_entry", 1001): "cryo_accounted",
    ("mm_entry", 1000): "cryo_mlockall",
    ("thread_core_entry", 1000): "cryo_timerslack_ns",
    ("mnt_entry", 1000): "cryo_host_path",
}

NEWER_THAN_DEBIAN_CRIU = {
    ("creds_entry", 18): "no_new_privs",
    ("creds_entry", 19): "cap_amb",
    ("task_core_entry", 21): "stop_signo",
    ("task_core_entry", 22): "membarrier_registration_mask",
    ("cg_controller_entry", 3): "is_threaded",
    ("memfd_inode_entry", 9): "mode",
    ("file_entry", 22): "pidfd",
    ("sk_packet_entry", 128): "ucred",  # a message's SCM_CREDENTIALS (CRIU 3.x and later)
    # rpc.proto: the options CRIU added to criu_opts after 3.17.
    ("criu_opts", 66): "skip_file_rwx_check",
    ("criu_opts", 67): "unprivileged",
    ("criu_opts", 68): "images_dir",
    ("criu_opts", 69): "leave_stopped",
    ("criu_opts", 70): "display_stats",
    ("criu_opts", 71): "log_to_stderr",
    ("criu_opts", 72): "allow_uprobes",
    ("criu_opts", 73): "ghost_fiemap",
    ("criu_opts", 74): "file_validation_method",
}

# Defaults newer CRIU releases gave (CRIU 4.x: images_dir_fd is -1 when images_dir is used):
# (message, field number) -> (Debian's CRIU 3.17 default, ours).
NEWER_DEFAULTS = {
    ("criu_opts", 1): (None, -1),
}

# Whole enums newer CRIU releases added (rpc.proto: criu_opts.file_validation_method).
NEWER_ENUMS_THAN_DEBIAN_CRIU = {"criu_file_validation_method"}

# Enum values newer CRIU releases added (4.2's fd type PIDFD): (enum, value name) -> number.
NEWER_ENUM_VALUES = {
    ("fd_types", "PIDFD"): 20,
    ("criu_network_lock_method", "SKIP"): 3,  # rpc.proto, CRIU 3.18
}

# Whole messages that newer CRIU releases added after Debian's CRIU 3.17: only the fields
# above refer to them; their own numbers are checked against CRIU's sources by review.
NEWER_MESSAGES_THAN_DEBIAN_CRIU = {"sk_ucred_entry", "pidfd_entry"}  # pidfd.proto: CRIU 4.2

# Checked by name only, and left out of the wire comparison.
NOT_IN_CRIU = {**NEWER_THAN_DEBIAN_CRIU, **CRYO_EXTENSIONS}


def strip_newer(msg):
    """Clears, recursively, the fields Debian's CRIU does not know yet."""
    for f, v in list(msg.ListFields()):
        if (msg.DESCRIPTOR.name, f.number) in NOT_IN_CRIU:
            msg.ClearField(f.name)
        elif f.type == FieldDescriptor.TYPE_MESSAGE:
            for sub in (v if f.label == FieldDescriptor.LABEL_REPEATED else [v]):
                strip_newer(sub)


def criu_opts(f):
    """The field's options as bytes: the (criu) options (hex, flags, dev, ...) that decide
    how crit and cryo decode show it, plus packed (compared above as well)."""
    return f.GetOptions().SerializeToString()


def default_of(f):
    if not f.has_default_value:
        return None
    return f.default_value


def check_message(ours, criu):
    errs = []
    criu_by_num = {f.number: f for f in criu.fields}
    for f in ours.fields:
        c = criu_by_num.get(f.number)
        newer = NOT_IN_CRIU.get((ours.name, f.number))
        if c is None and newer is not None:
            if f.name != newer:
                errs.append("field %d: expected name %s" % (f.number, newer))
            continue
        if c is None:
            errs.append("field %s: CRIU has no field number %d" % (describe(f), f.number))
            continue
        bad = []
        if f.name != c.name:
            bad.append("name")
        if f.type != c.type:
            bad.append("type")
        if f.label != c.label:
            bad.append("label")
        if is_packed(f) != is_packed(c):
            bad.append("packed")
        if ref_name(f) != ref_name(c):
            bad.append("referenced type")
        if default_of(f) != default_of(c) and NEWER_DEFAULTS.get(
                (ours.name, f.number)) != (default_of(c), default_of(f)):
            bad.append("default")
        if criu_opts(f) != criu_opts(c):
            bad.append("(criu) options")
        if bad:
            errs.append("field %d differs (%s): ours '%s', CRIU '%s'" %
                        (f.number, ", ".join(bad), describe(f), describe(c)))
    ours_nums = {f.number for f in ours.fields}
    for c in criu.fields:
        if c.label == FieldDescriptor.LABEL_REQUIRED and c.number not in ours_nums:
            errs.append("CRIU's required field '%s' is missing" % describe(c))
    return errs


def check_enum(ours, criu):
    a = {v.name: v.number for v in ours.values}
    b = {v.name: v.number for v in criu.values}
    if a == b:
        return []
    errs = []
    for k in sorted(set(a) | set(b)):
        if k not in b and NEWER_ENUM_VALUES.get((ours.full_name, k)) == a.get(k):
            continue
        if a.get(k) != b.get(k):
            errs.append("value %s: ours %s, CRIU %s" % (k, a.get(k), b.get(k)))
    return errs


def fill(msg, depth=0):
    """Set every field of msg (recursively) to a non-default value."""
    for f in msg.DESCRIPTOR.fields:
        if f.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
            if depth > 3:
                continue
            if f.label == FieldDescriptor.LABEL_REPEATED:
                for _ in range(2):
                    fill(getattr(msg, f.name).add(), depth + 1)
            else:
                fill(getattr(msg, f.name), depth + 1)
            continue
        if f.type == FieldDescriptor.TYPE_ENUM:
            # Values Debian's CRIU does not know yet would decode as unknown there.
            known = [v for v in f.enum_type.values
                     if (f.enum_type.full_name, v.name) not in NEWER_ENUM_VALUES]
            vals = [known[-1].number, known[0].number]
        elif f.type == FieldDescriptor.TYPE_BOOL:
            vals = [True, False]
        elif f.type == FieldDescriptor.TYPE_STRING:
            vals = ["s%d" % f.number, "t"]
        elif f.type == FieldDescriptor.TYPE_BYTES:
            vals = [b"\x00b%d" % f.number, b"\xff"]
        elif f.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            vals = [1.5, -2.0]
        else:
            big = {FieldDescriptor.CPPTYPE_INT32: -(2 ** 31),
                   FieldDescriptor.CPPTYPE_INT64: -(2 ** 63),
                   FieldDescriptor.CPPTYPE_UINT32: 2 ** 32 - 1,
                   FieldDescriptor.CPPTYPE_UINT64: 2 ** 64 - 1}[f.cpp_type]
            vals = [f.number + 1000 * (depth + 1), big]
        if f.label == FieldDescriptor.LABEL_REPEATED:
            if msg.DESCRIPTOR.name == "inet_sk_entry" and f.name in ("src_addr", "dst_addr"):
                vals = vals * 2  # an IPv6 address: crit shows it only with 1 or 4 words
            getattr(msg, f.name).extend(vals)
        else:
            setattr(msg, f.name, vals[0])


def message_class(desc):
    get = getattr(message_factory, "GetMessageClass", None)
    if get is not None:
        return get(desc)
    return message_factory.MessageFactory(desc.file.pool).GetPrototype(desc)


def check_wire(ours_desc, criu_desc):
    from pycriu.images import pb2dict

    mine = message_class(ours_desc)()
    fill(mine)
    strip_newer(mine)
    data = mine.SerializeToString()
    theirs = message_class(criu_desc)()
    try:
        theirs.ParseFromString(data)
    except Exception as e:
        return ["CRIU cannot parse our encoding: %s" % e]
    # ParseFromString of the python runtime does not enforce required fields
    # (CRIU's protobuf-c restore does), so check them explicitly.
    if not theirs.IsInitialized():
        return ["CRIU's required fields not set by our encoding: %s" %
                ", ".join(theirs.FindInitializationErrors())]
    errs = []
    a = text_format.MessageToString(mine)
    b = text_format.MessageToString(theirs)
    if a != b:
        errs.append("decoded differently by CRIU:\n--- ours\n%s--- CRIU\n%s" % (a, b))
    try:
        pb2dict.pb2dict(theirs, pretty=True)
    except Exception as e:
        errs.append("crit's pb2dict fails on it: %r" % (e,))
    return errs


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    proto_dir = argv[1]
    protoc = argv[2] if len(argv) > 2 and argv[2] else shutil.which("protoc")
    if not protoc:
        sys.exit("protoc not found")

    files = load_ours(proto_dir, protoc)
    criu_msgs, criu_enums = load_criu()

    passed = failed = 0
    n_msgs = n_enums = 0
    for fd in files:
        if fd.name.startswith("google/protobuf/") or fd.name == "opts.proto":
            continue  # the field options themselves (and descriptor.proto they extend)
        for m in walk_messages(fd.message_types_by_name.values()):
            n_msgs += 1
            c = criu_msgs.get(RENAMED.get(m.full_name, m.full_name))
            if c is None and m.full_name in NEWER_MESSAGES_THAN_DEBIAN_CRIU:
                passed += 1
                continue
            errs = (["no CRIU message of that name"] if c is None
                    else check_message(m, c))
            if c is not None and not errs:
                errs = check_wire(m, c)
            for e in errs:
                print("MISMATCH %s (%s): %s" % (m.full_name, fd.name, e))
            if errs:
                failed += 1
            else:
                passed += 1
        for en in walk_enums(fd):
            n_enums += 1
            c = criu_enums.get(en.full_name)
            if c is None and en.full_name in NEWER_ENUMS_THAN_DEBIAN_CRIU:
                passed += 1
                continue
            errs = (["no CRIU enum of that name"] if c is None
                    else check_enum(en, c))
            for e in errs:
                print("MISMATCH enum %s (%s): %s" % (en.full_name, fd.name, e))
            if errs:
                failed += 1
            else:
                passed += 1

    print("checked %d messages and %d enums in %d files" % (n_msgs, n_enums, len(files)))
    print("proto compat: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
