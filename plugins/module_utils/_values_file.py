# -*- coding: utf-8 -*-
# Copyright: okemesh.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The file side of okemesh.istio.helm_values: read, lock, validate, back up and write a values file.

This is a private module_utils file: it may change at any time.

The edit itself (text in, text out) is :func:`_values.edit_values`; this service owns
everything that touches the file system, with these guarantees:

* Only a regular file, or a symlink to one, is read or replaced. A symlink is written
  through (the target is replaced, the link stays); a dangling link, a link loop, a
  directory, a device, a FIFO or a socket is refused before anything is opened for
  reading, so nothing hangs and nothing but a regular file is ever replaced.
* Every option is checked (owner, group, mode, the bounds) before anything is written.
* An exclusive lock (``flock`` on the file being edited) is held for the whole
  read-modify-write, so concurrent runs of the module on one file serialise and none of
  their edits is lost. A writer that does not take the lock (an editor, ``sed -i``) is
  caught by comparing the file (inode, size, times and content hash) just before the
  replace with what was read: the edit is then redone on the new content, up to
  ``CHANGE_RETRIES`` times, or the run fails saying so. Only a write landing in the instant
  between that comparison and the rename can still be lost; no advisory scheme closes that.
* The file size is bounded before it is read (``max_file_size``) and alias expansion
  before the data is built (``max_alias_nodes``, in ``_values``).
* The new content is written to a temporary file in the same directory, given its final
  mode and owner, checked by the ``validate`` command, then renamed over the file (or
  hard-linked into place for a new file, so a file created meanwhile is never replaced).
* Error messages name the path, a line and a column, never the file's content.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import hashlib
import os
import re
import shlex
import stat
import subprocess
import tempfile
import time

try:
    import fcntl

    HAS_FCNTL = True
except ImportError:  # pragma: no cover - not on POSIX
    HAS_FCNTL = False

try:
    import grp
    import pwd
except ImportError:  # pragma: no cover - not on POSIX
    grp = pwd = None

from ansible_collections.okemesh.istio.plugins.module_utils._errors import InputError, ValuesFileError
from ansible_collections.okemesh.istio.plugins.module_utils._values import (
    DEFAULT_MAX_ALIAS_NODES,
    edit_values,
    normalize_set,
    normalize_unset,
)

DEFAULT_MAX_FILE_SIZE = 8 * 1024 * 1024
MAX_FILE_SIZE_LIMIT = 1024 * 1024 * 1024
MAX_ALIAS_NODES_LIMIT = 100000000
DEFAULT_LOCK_TIMEOUT = 60
MAX_LOCK_TIMEOUT = 3600
CHANGE_RETRIES = 3

_SYMBOLIC_CLAUSE = re.compile(r"^([ugoa]*)((?:[-+=][rwxXstugo]*)+)$")
_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


def _errmsg(exc):
    return exc.strerror or type(exc).__name__


def _kind(mode):
    for test, name in _FILE_KINDS:
        if test(mode):
            return name
    return "not a regular file"


# ---------------------------------------------------------------------------
# Options: everything is checked before anything is read or written
# ---------------------------------------------------------------------------


def _bounded_int(name, value, low, high):
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError("%s must be an integer between %d and %d." % (name, low, high))
    if not low <= value <= high:
        raise InputError("%s must be between %d and %d; got %d." % (name, low, high, value))
    return value


def parse_mode(mode):
    """``mode`` option -> an int (octal given as int or string) or a validated symbolic string; None stays None."""
    if mode is None:
        return None
    if isinstance(mode, bool):
        raise InputError("mode must be an octal number such as '0644' or a symbolic mode such as 'u=rw,g=r,o='; got a boolean.")
    if isinstance(mode, int):
        if not 0 <= mode <= 0o7777:
            raise InputError("mode %d is out of range: an octal mode is 0 to 07777 (quote it in YAML: mode: '0644')." % mode)
        return mode
    text = str(mode).strip()
    if re.match(r"^(0o)?[0-7]+$", text):
        value = int(text[2:] if text.startswith("0o") else text, 8)
        if value > 0o7777:
            raise InputError("mode %r is out of range: an octal mode is 0 to 07777." % text)
        return value
    if text and all(_SYMBOLIC_CLAUSE.match(clause) for clause in text.split(",")):
        return text
    raise InputError("mode %r is neither an octal mode (such as '0644') nor a symbolic mode (such as 'u=rw,g=r,o=')." % text)


_CLASS_BITS = {"u": (0o400, 0o200, 0o100, 0o4000), "g": (0o40, 0o20, 0o10, 0o2000), "o": (0o4, 0o2, 0o1, 0)}


def apply_mode(current, mode, is_dir=False):
    """The permission bits that ``mode`` (from :func:`parse_mode`) gives a file whose bits are ``current``."""
    if mode is None:
        return current
    if isinstance(mode, int):
        return mode
    result = current
    for clause in mode.split(","):
        match = _SYMBOLIC_CLAUSE.match(clause)
        who = match.group(1) or "a"
        classes = "ugo" if "a" in who else "".join(c for c in "ugo" if c in who)
        for op, perms in re.findall(r"([-+=])([rwxXstugo]*)", match.group(2)):
            bits = 0
            for cls in classes:
                r, w, x, special = _CLASS_BITS[cls]
                for perm in perms:
                    if perm == "r":
                        bits |= r
                    elif perm == "w":
                        bits |= w
                    elif perm == "x" or (perm == "X" and (is_dir or result & 0o111)):
                        bits |= x
                    elif perm == "s":
                        bits |= special
                    elif perm == "t" and cls == "o":
                        bits |= 0o1000
                    elif perm in "ugo":
                        # copy the permissions of another class
                        src = _CLASS_BITS[perm]
                        for have, give in zip(src[:3], (r, w, x)):
                            if result & have:
                                bits |= give
            if op == "+":
                result |= bits
            elif op == "-":
                result &= ~bits
            else:
                clear = 0
                for cls in classes:
                    r, w, x, special = _CLASS_BITS[cls]
                    clear |= r | w | x | special | (0o1000 if cls == "o" else 0)
                result = (result & ~clear) | bits
    return result & 0o7777


def resolve_owner(owner):
    """``owner`` option -> uid (a user name on this host or a number); None stays None."""
    if owner is None:
        return None
    text = str(owner).strip()
    if re.match(r"^[0-9]+$", text):
        return int(text)
    try:
        return pwd.getpwnam(text).pw_uid
    except (KeyError, TypeError, ValueError):
        raise InputError("owner %r is not a user on this host (give a user name or a numeric uid)." % text)


def resolve_group(group):
    """``group`` option -> gid (a group name on this host or a number); None stays None."""
    if group is None:
        return None
    text = str(group).strip()
    if re.match(r"^[0-9]+$", text):
        return int(text)
    try:
        return grp.getgrnam(text).gr_gid
    except (KeyError, TypeError, ValueError):
        raise InputError("group %r is not a group on this host (give a group name or a numeric gid)." % text)


def _validate_argv(validate):
    if validate is None:
        return None
    if "%s" not in validate:
        raise InputError("validate must contain %%s (where the temporary file goes); got %r." % validate)
    try:
        argv = shlex.split(validate)
    except ValueError as exc:
        raise InputError("validate is not a valid command line (%s); got %r." % (exc, validate))
    if not argv:
        raise InputError("validate must be a command line containing %s.")
    return argv


# ---------------------------------------------------------------------------
# Looking at the path without opening it
# ---------------------------------------------------------------------------


def _resolve(path):
    """Return the real path of ``path`` (a regular file, or a symlink to one), or None when nothing is there."""
    try:
        link = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValuesFileError("Cannot look at %s: %s." % (path, _errmsg(exc)), path=path)
    if stat.S_ISLNK(link.st_mode):
        try:
            target = os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ValuesFileError("%s is a symlink loop; point it at a values file or remove it." % path, path=path)
            if exc.errno == errno.ENOENT:
                raise ValuesFileError(
                    "%s is a dangling symlink (its target %s does not exist); it is not replaced by a file. "
                    "Create the target or remove the link." % (path, os.readlink(path)),
                    path=path,
                )
            raise ValuesFileError("Cannot follow the symlink %s: %s." % (path, _errmsg(exc)), path=path)
        if not stat.S_ISREG(target.st_mode):
            raise ValuesFileError("%s is a symlink to %s, not to a regular file; it is left alone." % (path, _kind(target.st_mode)), path=path)
        return os.path.realpath(path)
    if not stat.S_ISREG(link.st_mode):
        raise ValuesFileError("%s is %s, not a regular file; it is left alone." % (path, _kind(link.st_mode)), path=path)
    return os.path.abspath(path)


def _signature(st):
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class _Snapshot(object):
    """What was read: the bytes, their hash and the file's identity (or nothing, for a new file)."""

    def __init__(self, target, fd=None, data=None, st=None):
        self.target = target
        self.fd = fd
        self.data = data
        self.st = st
        self.digest = hashlib.sha256(data).hexdigest() if data is not None else None

    @property
    def exists(self):
        return self.data is not None

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _lock(fd, path, deadline, timeout):
    """Exclusive flock on ``fd`` before ``deadline``; False when the file system has no flock."""
    if not HAS_FCNTL:  # pragma: no cover
        return False
    delay = 0.005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK, errno.EINTR):
                return False  # e.g. ENOLCK/EBADF on some network file systems: rely on change detection only
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ValuesFileError(
                "%s is locked by another edit for more than %s s (lock_timeout); nothing was changed. "
                "Raise lock_timeout or find the process holding the lock." % (path, timeout),
                path=path,
            )
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.1)


def _read_fd(fd, target, max_file_size):
    chunks = []
    total = 0
    while True:
        chunk = os.read(fd, min(1024 * 1024, max_file_size + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if total > max_file_size:
            raise ValuesFileError(
                "%s is larger than %d bytes (max_file_size); raise max_file_size to edit it." % (target, max_file_size),
                path=target,
            )
    return b"".join(chunks)


def _open_and_read(path, target, max_file_size, lock, deadline, lock_timeout):
    """Open ``target`` (known to be a regular file), optionally lock it, and read it within the size bound."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    while True:
        try:
            fd = os.open(target, flags)
        except FileNotFoundError:
            return None  # removed meanwhile: the caller looks again
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ValuesFileError("%s was replaced by a symlink while being opened; nothing was changed." % path, path=path)
            raise ValuesFileError("Cannot read %s: %s." % (path, _errmsg(exc)), path=path)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ValuesFileError("%s is %s, not a regular file; it is left alone." % (path, _kind(st.st_mode)), path=path)
            if st.st_size > max_file_size:
                raise ValuesFileError(
                    "%s is %d bytes, larger than %d (max_file_size); raise max_file_size to edit it." % (path, st.st_size, max_file_size),
                    path=path,
                )
            if lock:
                _lock(fd, path, deadline, lock_timeout)
                try:
                    current = os.stat(target)
                except FileNotFoundError:
                    current = None
                if current is None or (current.st_dev, current.st_ino) != (st.st_dev, st.st_ino):
                    # another edit replaced the file while we waited for its lock: lock the new one
                    os.close(fd)
                    fd = None
                    if current is None or time.monotonic() > deadline:
                        return None
                    continue
                st = os.fstat(fd)
            try:
                data = _read_fd(fd, path, max_file_size)
            except OSError as exc:
                raise ValuesFileError("Cannot read %s: %s." % (path, _errmsg(exc)), path=path)
            snap = _Snapshot(target, fd, data, st)
            fd = None
            return snap
        finally:
            if fd is not None:
                os.close(fd)


def _changed_since(snap, max_file_size):
    """True when ``snap.target`` is no longer what was read (another writer, without our lock)."""
    try:
        now = os.stat(snap.target)
    except FileNotFoundError:
        return True
    if _signature(now) != _signature(snap.st):
        return True
    try:
        fd = os.open(snap.target, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return True
    try:
        if _signature(os.fstat(fd)) != _signature(snap.st):
            return True
        data = _read_fd(fd, snap.target, max_file_size)
    except (OSError, ValuesFileError):
        return True
    finally:
        os.close(fd)
    return hashlib.sha256(data).hexdigest() != snap.digest


def _decode(data, path):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ValuesFileError(
            "%s is not UTF-8 text (an invalid byte at line %d, column %d), so it is not a values file." % (path, line, column),
            path=path,
        )


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _set_owner(fd, uid, gid, explicit, path):
    if uid is None and gid is None:
        return
    try:
        os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
    except OSError as exc:
        if explicit or exc.errno != errno.EPERM:
            raise ValuesFileError("Cannot give %s the owner/group asked for: %s; nothing was changed." % (path, _errmsg(exc)), path=path)


def _write_temp(target, data):
    directory = os.path.dirname(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(target), suffix=".tmp", dir=directory)
    except OSError as exc:
        raise ValuesFileError("Cannot write a temporary file in %s: %s; nothing was changed." % (directory, _errmsg(exc)), path=target)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        os.unlink(tmp)
        raise ValuesFileError("Cannot write the temporary file for %s: %s; nothing was changed." % (target, _errmsg(exc)), path=target)
    os.close(fd)
    return tmp


def _finish_temp(tmp, path, final_mode, uid, gid, explicit_owner):
    """Give the temporary file its final owner, group and mode (it was private until now)."""
    fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        _set_owner(fd, uid, gid, explicit_owner, path)  # before chmod: a chown clears setuid bits
        os.fchmod(fd, final_mode)
    except OSError as exc:
        raise ValuesFileError("Cannot set the mode of the new %s: %s; nothing was changed." % (path, _errmsg(exc)), path=path)
    finally:
        os.close(fd)


def _run_validate(argv, tmp, path):
    cmd = [arg.replace("%s", tmp) for arg in argv]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    except OSError as exc:
        raise ValuesFileError("The validate command %r could not run: %s; %s was not changed." % (argv[0], _errmsg(exc), path), path=path, cmd=cmd)
    if proc.returncode != 0:
        raise ValuesFileError(
            "validate command failed (rc=%d) for the new %s; the file was not changed." % (proc.returncode, path),
            path=path,
            rc=proc.returncode,
            stdout=proc.stdout.decode("utf-8", "replace"),
            stderr=proc.stderr.decode("utf-8", "replace"),
            cmd=cmd,
        )


def _backup(snap, uid, gid):
    """Copy what was read next to the file (``name.PID.YYYY-MM-DD@HH:MM:SS~``, the name Ansible's backups use)."""
    name = "%s.%d.%s" % (snap.target, os.getpid(), time.strftime("%Y-%m-%d@%H:%M:%S~"))
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as exc:
        raise ValuesFileError("Cannot create the backup %s: %s; nothing was changed." % (name, _errmsg(exc)), path=snap.target)
    try:
        os.write(fd, snap.data)
        os.fsync(fd)
        _set_owner(fd, uid, gid, False, name)
        os.fchmod(fd, stat.S_IMODE(snap.st.st_mode))
    finally:
        os.close(fd)
    try:
        os.utime(name, ns=(snap.st.st_atime_ns, snap.st.st_mtime_ns))
    except OSError:
        pass
    return name


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _install(tmp, snap, path, unsafe_writes):
    """Put ``tmp`` in place of ``snap.target``; False when a new file appeared there meanwhile."""
    target = snap.target
    if not snap.exists:
        try:
            os.link(tmp, target)  # fails if someone created the file meanwhile: never replace it blindly
            os.unlink(tmp)
            return True
        except FileExistsError:
            os.unlink(tmp)
            return False
        except OSError:
            pass  # no hard links on this file system: rename below
    try:
        os.rename(tmp, target)
        return True
    except OSError as exc:
        if unsafe_writes and exc.errno == errno.EBUSY:
            # e.g. a file bind-mounted into a container: write in place, as Ansible's unsafe_writes does
            try:
                with open(tmp, "rb") as src, open(target, "r+b") as dst:
                    dst.write(src.read())
                    dst.truncate()
                os.unlink(tmp)
                return True
            except OSError as inner:
                exc = inner
        os.unlink(tmp)
        raise ValuesFileError("Cannot replace %s: %s; nothing was changed." % (path, _errmsg(exc)), path=path)


# ---------------------------------------------------------------------------
# The service
# ---------------------------------------------------------------------------


class ValuesFileOutcome(object):
    """``result`` is what the module returns; ``real_path`` is the file edited (a symlink's target), or None."""

    def __init__(self, result, real_path):
        self.result = result
        self.real_path = real_path


class _Request(object):
    """The options of one edit, checked and normalised before anything is read or written."""

    def __init__(
        self,
        path,
        set_values,
        unset,
        create,
        document,
        backup,
        validate,
        mode,
        owner,
        group,
        unsafe_writes,
        max_file_size,
        max_alias_nodes,
        lock_timeout,
        check_mode,
        want_diff,
        prepare_temp,
    ):
        if not isinstance(path, str) or not path.strip():
            raise InputError("path must name a values file; got an empty path.")
        if "\0" in path:
            raise InputError("path must not contain a NUL character.")
        self.path = path
        self.sets = normalize_set(set_values)
        self.unsets = normalize_unset(unset)
        self.create = bool(create)
        self.document = None if document is None else _bounded_int("document", document, -1000000, 1000000)
        self.backup = bool(backup)
        self.argv = _validate_argv(validate)
        self.mode = parse_mode(mode)
        self.uid = resolve_owner(owner)
        self.gid = resolve_group(group)
        self.explicit_owner = owner is not None or group is not None
        self.unsafe_writes = bool(unsafe_writes)
        self.max_file_size = _bounded_int("max_file_size", max_file_size, 1, MAX_FILE_SIZE_LIMIT)
        self.max_alias_nodes = _bounded_int("max_alias_nodes", max_alias_nodes, 0, MAX_ALIAS_NODES_LIMIT)
        if isinstance(lock_timeout, bool) or not isinstance(lock_timeout, (int, float)) or not 0 <= lock_timeout <= MAX_LOCK_TIMEOUT:
            raise InputError("lock_timeout must be a number of seconds between 0 and %d; got %r." % (MAX_LOCK_TIMEOUT, lock_timeout))
        self.lock_timeout = lock_timeout
        self.check_mode = bool(check_mode)
        self.want_diff = bool(want_diff)
        self.prepare_temp = prepare_temp


def edit_values_file(
    *,
    path,
    set_values=None,
    unset=None,
    create=True,
    document=None,
    backup=False,
    validate=None,
    mode=None,
    owner=None,
    group=None,
    unsafe_writes=False,
    max_file_size=DEFAULT_MAX_FILE_SIZE,
    max_alias_nodes=DEFAULT_MAX_ALIAS_NODES,
    lock_timeout=DEFAULT_LOCK_TIMEOUT,
    check_mode=False,
    want_diff=False,
    prepare_temp=None,
):
    """Edit the values file at ``path`` (see the module docs for the options); returns a :class:`ValuesFileOutcome`.

    Raises InputError (an option) or ValuesFileError (the file); in both cases the file is unchanged.
    ``prepare_temp(tmp, target)`` may adjust the temporary file before it replaces the target
    (the module copies the SELinux context with it).
    """
    req = _Request(
        path,
        set_values,
        unset,
        create,
        document,
        backup,
        validate,
        mode,
        owner,
        group,
        unsafe_writes,
        max_file_size,
        max_alias_nodes,
        lock_timeout,
        check_mode,
        want_diff,
        prepare_temp,
    )
    deadline = time.monotonic() + req.lock_timeout
    attempts = 0
    while True:
        target = _resolve(path)
        if target is None:
            if not req.create:
                raise ValuesFileError("Values file %s does not exist (set create=true to create it)." % path, path=path)
            parent = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(parent):
                raise ValuesFileError("Cannot create %s: directory %s does not exist." % (path, parent), path=path)
            snap = _Snapshot(os.path.abspath(path))
        else:
            snap = _open_and_read(path, target, req.max_file_size, not req.check_mode, deadline, req.lock_timeout)
        outcome = None
        if snap is not None:
            try:
                outcome = _edit_once(req, snap)
            finally:
                snap.close()
        if outcome is not None:
            return outcome
        attempts += 1
        if attempts >= CHANGE_RETRIES + 10 or (attempts >= CHANGE_RETRIES and snap is not None and snap.exists):
            raise ValuesFileError(
                "%s was changed by another program while it was being edited (%d times in a row); nothing was written. "
                "Run the task again when the other writer is done." % (path, attempts),
                path=path,
            )


def _edit_once(req, snap):
    """One read-modify-write under the lock; None when the file changed under us and the edit must be redone."""
    path = req.path
    original = _decode(snap.data, path) if snap.exists else None
    edit = edit_values(
        original,
        sets=req.sets,
        unsets=req.unsets,
        create=req.create,
        document=req.document,
        source=path,
        max_alias_nodes=req.max_alias_nodes,
    )
    content_changed = (not snap.exists) or edit.text != original
    if snap.exists:
        current = (stat.S_IMODE(snap.st.st_mode), snap.st.st_uid, snap.st.st_gid)
        final = (
            apply_mode(current[0], req.mode),
            current[1] if req.uid is None else req.uid,
            current[2] if req.gid is None else req.gid,
        )
        attrs_changed = final != current
    else:
        final = (apply_mode(0o666 & ~_umask(), req.mode), req.uid, req.gid)
        attrs_changed = False
    result = dict(changed=content_changed or attrs_changed, path=path, changes=edit.changes, rendering=edit.rendering)
    if req.want_diff:
        result["diff"] = dict(
            before=original or "",
            after=edit.text,
            before_header=path if snap.exists else "%s (absent)" % path,
            after_header=path,
        )
    if req.check_mode:
        return ValuesFileOutcome(result, snap.target if snap.exists else None)
    if content_changed:
        tmp = _write_temp(snap.target, edit.text.encode("utf-8", "surrogatepass"))
        try:
            if req.argv:
                _run_validate(req.argv, tmp, path)
            _finish_temp(tmp, path, final[0], final[1], final[2], req.explicit_owner)
            if req.prepare_temp is not None:
                req.prepare_temp(tmp, snap.target)
            if snap.exists and _changed_since(snap, req.max_file_size):
                os.unlink(tmp)
                return None
            if snap.exists and req.backup:
                result["backup_file"] = _backup(snap, snap.st.st_uid, snap.st.st_gid)
        except BaseException:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise
        if not _install(tmp, snap, path, req.unsafe_writes):
            return None
        _fsync_dir(os.path.dirname(snap.target))
    elif attrs_changed:
        try:
            if final[1:] != current[1:]:
                os.chown(snap.target, final[1], final[2])
            os.chmod(snap.target, final[0])
        except OSError as exc:
            raise ValuesFileError("Cannot set the owner, group or mode of %s: %s." % (path, _errmsg(exc)), path=path)
    return ValuesFileOutcome(result, snap.target)
