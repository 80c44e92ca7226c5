"""Carrying out a MIGRATE action: a resumable state machine, one journaled step at a time.

    mark     tag the source with the migration id and target (from now on every plan
             recognises the migration from the cloud alone, see planner/migrate.py)
    stop     stop the source, so its disks are consistent
    export   read each disk (boot disk, then attached volumes) into the staging bucket,
             checksumming as it streams (or, without object storage, checksum only)
    import   import each disk into the target as an image (verified against the checksum)
    create   create the target VM from the boot image and volumes from the others, attach
    verify   the target runs as declared and its disks hold the source's bytes (where the
             cloud can tell without reading them)
    switch   the source is tagged retained-until and successor: the target is now the VM
    cleanup  staged objects and imported images are deleted
    finish   the target loses its migration tag (until then a plan still sees the
             migration, so a crash during cleanup resumes it and nothing is left behind)

Every step is idempotent (each result is found by uid or checked before it is redone),
journaled (intent before, outcome after) and recorded in the MigrationStore, so a
process killed at any point resumes with the next plan. The source is never deleted
here: after the switch it stays stopped until ``retainSeconds`` pass and a later plan
deletes it. ``abort`` (before the switch) deletes what was made for the target and
gives the source back its power state.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import partial
from typing import TypeVar

from reconciler.broker.schedule import iso
from reconciler.executor.journal import JournalSink
from reconciler.executor.migration_store import MigrationStore, Record
from reconciler.executor.transfer import Caller, Disk, Transfer
from reconciler.model.artifacts import DiskRef
from reconciler.model.errors import PermanentError
from reconciler.model.keys import (
    TAG_MIGRATED_TO,
    TAG_MIGRATION,
    TAG_MIGRATION_TARGET,
    TAG_PLACED_AT,
    TAG_RETAIN_UNTIL,
    TAG_UID,
)
from reconciler.model.observed import ObservedVM, ObservedVolume
from reconciler.model.plan import Action
from reconciler.model.specs import PowerState
from reconciler.providers.base import (
    Provider,
    VMRequest,
    VMUpdate,
    VolumeRequest,
)

T = TypeVar("T")
STEPS = ("mark", "stop", "export", "import", "create", "verify", "switch", "cleanup", "finish")


class Migration:
    """One MIGRATE action's state machine (see the module docstring)."""

    def __init__(
        self,
        action: Action,
        providers: Mapping[str, Provider],
        store: MigrationStore,
        journal: JournalSink,
        plan_id: str,
        call: Caller,
        progress: Callable[[str], None],
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        p = action.params
        self.action, self.params, self.id = action, p, str(p["migrationId"])
        self.src_cloud, self.dst_cloud = p["source"]["cloud"], p["target"]["cloud"]
        self.src, self.dst = providers[self.src_cloud], providers[self.dst_cloud]
        self.source_id = str(p["source"]["externalId"])
        self.store, self.journal, self.plan_id = store, journal, plan_id
        self.call, self.progress, self.now = call, progress, now
        loaded = store.load(self.id)
        if loaded is not None and loaded.get("aborted") and p["mode"] != "abort":
            loaded = None  # the same move, started again after a rollback: from scratch
        self.record: Record = loaded or {"key": str(action.key), "disks": {}}
        self.disks = self._disks()
        self.transfer = Transfer(self.id, p, providers, self.record, call)

    def _disks(self) -> list[Disk]:
        boot = Disk(
            "boot",
            DiskRef("vm", self.source_id),
            self.params["target"]["imageUid"],
            str(self.action.key),
        )
        vols = [
            Disk(
                f"volume {v['key']}", DiskRef("volume", v["externalId"]), v["imageUid"], v["key"], v
            )
            for v in self.params.get("volumes") or ()
        ]
        return [boot, *vols]

    # -- plumbing ------------------------------------------------------------------------
    def _on(self, cloud: str, fn: Callable[[], T]) -> T:
        result: T = self.call(cloud, fn)
        return result

    def _save(self, step: str) -> None:
        self.record["step"] = step
        self.record["updatedAt"] = iso(self.now())
        self.store.save(self.id, self.record)

    def _step(self, name: str, fn: Callable[[], None]) -> None:
        done = self.record.setdefault("done", [])
        if name in done:
            return
        self.progress(f"{name} ({STEPS.index(name) + 1}/{len(STEPS)})" if name in STEPS else name)
        marker = replace(self.action, id=f"{self.action.id}#{name}", params={})
        self.journal.intent(self.plan_id, marker)
        try:
            fn()
        except Exception as exc:
            self.journal.outcome(self.plan_id, marker, False, None, str(exc))
            raise
        self.journal.outcome(self.plan_id, marker, True, None)
        done.append(name)
        self._save(name)

    def _source(self) -> ObservedVM:
        vm = self._on(self.src_cloud, lambda: self.src.observe_vm(self.source_id))
        if vm is None:
            raise PermanentError(
                f"migration {self.id}: source VM {self.source_id} is gone; nothing to move",
                cloud=self.src_cloud,
                reason="NotFound",
            )
        return vm

    # -- run -----------------------------------------------------------------------------
    def run(self) -> ObservedVM:
        """Carry the migration (or its rollback) as far as it goes; returns the VM that
        is the resource now (the target, or the source after an abort)."""
        source = self._source()
        if self.params["mode"] == "abort":
            return self._abort(source)
        if not source.tags.get(TAG_MIGRATED_TO):
            self._step("mark", self._mark)
            self._step("stop", lambda: self._stop(source))
            self._step("export", self._export_all)
            self._step("import", self._import_all)
            self._step("create", self._create)
            self._step("verify", self._verify)
        self._step("switch", self._switch)
        self._step("cleanup", self._cleanup)
        self._step("finish", self._finish)
        target = self._target()
        if target is None:
            raise PermanentError(f"migration {self.id}: target VM vanished", cloud=self.dst_cloud)
        return target

    def _mark(self) -> None:
        target = f"{self.dst_cloud}/{self.params['target']['instanceType']}"
        tags = {TAG_MIGRATION: self.id, TAG_MIGRATION_TARGET: target}
        self._on(self.src_cloud, lambda: self.src.update_vm(self.source_id, VMUpdate(tags=tags)))

    def _stop(self, source: ObservedVM) -> None:
        self.record.setdefault("sourcePowerState", source.power_state.value)
        if source.power_state is not PowerState.STOPPED:
            update = VMUpdate(power_state=PowerState.STOPPED)
            self._on(self.src_cloud, lambda: self.src.update_vm(self.source_id, update))

    # -- disks -----------------------------------------------------------------------------
    def _export_all(self) -> None:
        for disk in self.disks:
            self.transfer.export(disk)
            self._save("export")

    def _import_all(self) -> None:
        for disk in self.disks:
            self.transfer.import_disk(disk)
            self._save("import")

    # -- target --------------------------------------------------------------------------
    def _target(self) -> ObservedVM | None:
        uid = self.params["target"]["tags"][TAG_UID]
        found = self._on(self.dst_cloud, partial(self.dst.find_by_uid, uid))
        return found if isinstance(found, ObservedVM) else None

    def _create(self) -> None:
        t = self.params["target"]
        request = VMRequest(
            name=t["name"],
            instance_type=t["instanceType"],
            image=self.record["disks"]["boot"]["imageId"],
            power_state=PowerState(t["powerState"]),
            tags=dict(t["tags"]),
            disk_gib=int(t.get("diskGiB", 0)),
        )
        vm = self._on(self.dst_cloud, lambda: self.dst.create_vm(request))
        self.record["targetId"] = vm.external_id
        for disk in self.disks[1:]:
            self._create_volume(disk, vm.external_id)

    def _create_volume(self, disk: Disk, vm_id: str) -> None:
        v = disk.volume
        assert v is not None
        image = self.record["disks"][disk.name]["imageId"]
        request = VolumeRequest(v["name"], int(v["sizeGiB"]), v["class"], dict(v["tags"]), image)
        vol = self._on(self.dst_cloud, lambda: self.dst.create_volume(request))
        self.transfer.entry(disk)["targetId"] = vol.external_id
        self._on(
            self.dst_cloud, lambda: self.dst.update_volume(vol.external_id, None, vm_id, False)
        )

    def _verify(self) -> None:
        target = self._target()
        wanted = PowerState(self.params["target"]["powerState"])
        if target is None or target.power_state is not wanted:
            state = "missing" if target is None else target.power_state.value
            raise PermanentError(
                f"migration {self.id}: target VM is {state}, expected {wanted.value}; the "
                "source is kept",
                cloud=self.dst_cloud,
                reason="VerifyFailed",
            )
        for disk in self.disks:
            entry = self.transfer.entry(disk)
            ref = (
                DiskRef("vm", target.external_id)
                if disk.volume is None
                else DiskRef("volume", entry["targetId"])
            )
            seen = self._on(self.dst_cloud, partial(self.dst.disk_sha256, ref))
            if seen is not None and seen != entry["sha256"]:
                raise PermanentError(
                    f"migration {self.id}: {disk.name} on the target has sha256 {seen[:12]}..., "
                    f"the source had {str(entry['sha256'])[:12]}...; the source is kept",
                    cloud=self.dst_cloud,
                    reason="VerifyFailed",
                )
            entry["verified"] = seen is not None or "image checksum"

    def _switch(self) -> None:
        target = self._target()
        if target is None:
            raise PermanentError(
                f"migration {self.id}: no target to switch to", cloud=self.dst_cloud
            )
        until = self.now() + dt.timedelta(seconds=int(self.params.get("retainSeconds", 0)))
        retained = {
            TAG_RETAIN_UNTIL: iso(until),
            TAG_MIGRATED_TO: f"{self.dst_cloud}/{target.external_id}",
            TAG_MIGRATION_TARGET: "",
        }
        source = self._source()
        if not source.tags.get(TAG_MIGRATED_TO):
            self._on(
                self.src_cloud, lambda: self.src.update_vm(self.source_id, VMUpdate(tags=retained))
            )
        self.record["retainUntil"] = retained[TAG_RETAIN_UNTIL]

    def _finish(self) -> None:
        target = self._target()
        if target is not None:
            done = VMUpdate(tags={TAG_MIGRATION: ""})
            self._on(self.dst_cloud, lambda: self.dst.update_vm(target.external_id, done))

    def _cleanup(self) -> None:
        for disk in self.disks:
            self.transfer.drop(disk)

    # -- abort ---------------------------------------------------------------------------
    def _abort(self, source: ObservedVM) -> ObservedVM:
        if source.tags.get(TAG_MIGRATED_TO):
            raise PermanentError(
                f"migration {self.id} already switched to {source.tags[TAG_MIGRATED_TO]}; "
                "there is nothing to roll back (pin placement.cloud to move it back)",
                cloud=self.src_cloud,
                reason="AlreadySwitched",
            )
        self._step("abort: target", self._drop_target)
        self._step("abort: artifacts", self._cleanup)
        self._step("abort: source", lambda: self._restore(source))
        self.record["aborted"] = True
        self._save("aborted")
        return self._source()

    def _drop_target(self) -> None:
        for disk in self.disks[1:]:
            uid = dict(disk.volume or {}).get("tags", {}).get(TAG_UID, "")
            vol = self._on(self.dst_cloud, partial(self.dst.find_by_uid, uid))
            if isinstance(vol, ObservedVolume):
                if vol.attached_to:
                    self._on(
                        self.dst_cloud,
                        partial(self.dst.update_volume, vol.external_id, None, None, True),
                    )
                self._on(self.dst_cloud, partial(self.dst.delete_volume, vol.external_id))
        target = self._target()
        if target is not None:
            self._on(self.dst_cloud, lambda: self.dst.delete_vm(target.external_id))

    def _restore(self, source: ObservedVM) -> None:
        tags = {TAG_MIGRATION: "", TAG_MIGRATION_TARGET: "", TAG_PLACED_AT: iso(self.now())}
        wanted = PowerState(self.params["target"]["powerState"])
        power = wanted if source.power_state is not wanted else None
        update = VMUpdate(power_state=power, tags=tags)
        self._on(self.src_cloud, lambda: self.src.update_vm(self.source_id, update))
