"""Base images, images and functions on images, on the memory store with a recording job
queue and an in-test builder: every status path, the build lock, and the reconciler's
image rows."""

from __future__ import annotations

import base64
import hashlib
import threading

import pytest

from engine import entities as E
from engine.builders.base import BuildError, Builder, BuiltImage
from engine.errors import Conflict, InvalidInput
from engine.services.catalog import ImageCatalog
from engine.jobs import (BUILD_IMAGE, CHECK_BASE_IMAGE, CREATE_FUNCTION, DELETE_BASE_IMAGE,
                         DELETE_FUNCTION, DELETE_IMAGE, EXECUTE_RUN, RecordingJobs)
from engine.services.base_images import BaseImageService
from engine.services.functions import FunctionService
from engine.services.images import ImageService
from engine.scheduler.reconciler import Reconciler
from engine.services.runs import RunService
from engine.sources import pack
from engine.store import open_store
from tests.unit.test_services import ScriptedDriver

ORG = "acme"


class ScriptedBuilder(Builder):
    """Answers with what the test sets; records what it was asked. Builds are
    content-addressed like the local builder's: the same manifest, the same url."""

    def __init__(self):
        self.checked: list[str] = []
        self.built: list[str] = []
        self.removed: list[str] = []
        self.functions: list[str] = []
        self.base_failure: str | None = None
        self.build_failure: str | None = None
        self.present = True
        #: when set, a build waits for it (to hold builds in flight)
        self.gate: threading.Event | None = None
        self.building = threading.Event()

    def check_base(self, base):
        self.checked.append(base.name)
        if self.base_failure:
            raise BuildError(self.base_failure)
        return {"language": base.language, "from": base.url}

    def base_present(self, base):
        return self.present

    def build_image(self, image, base_config):
        self.building.set()
        if self.gate is not None:
            assert self.gate.wait(5)
        self.built.append(image.name)
        if self.build_failure:
            raise BuildError(self.build_failure)
        address = hashlib.sha256((image.manifest or "").encode()).hexdigest()[:8]
        return BuiltImage(url=f"built/{address}", config={**base_config, "dir": address})

    def remove_image(self, image, built):
        self.removed.append(built.url)

    def build_function(self, deployment):
        self.functions.append(deployment.version)
        return {**deployment.image_config, "functionImage": f"fn/{deployment.version}"}


class RecordingDriver(ScriptedDriver):
    def __init__(self):
        super().__init__()
        self.configs: list[dict] = []

    def prepare(self, deployment):
        self.configs.append(deployment.image_config)
        super().prepare(deployment)

    def run(self, deployment, context, payload):
        self.configs.append(deployment.image_config)
        return super().run(deployment, context, payload)


class Parts:
    def __init__(self):
        self.store, self.jobs = open_store("memory://"), RecordingJobs()
        self.driver, self.builder = RecordingDriver(), ScriptedBuilder()
        self.catalog = ImageCatalog(self.store)
        self.bases = BaseImageService(self.store, self.jobs, self.builder)
        self.images = ImageService(self.store, self.jobs, self.builder, build_seconds=5)
        self.functions = FunctionService(self.store, self.jobs, self.driver, self.catalog,
                                         builder=self.builder)
        self.runs = RunService(self.store, self.jobs, self.driver, self.functions)

    def drain(self):
        """Carry out every queued job, as a worker would."""
        handlers = {CHECK_BASE_IMAGE: self.bases.check, DELETE_BASE_IMAGE: self.bases.remove,
                    BUILD_IMAGE: self.images.build, DELETE_IMAGE: self.images.remove,
                    CREATE_FUNCTION: self.functions.build, DELETE_FUNCTION: self.functions.remove,
                    EXECUTE_RUN: self.runs.execute}
        while self.jobs.submitted:
            job, key = self.jobs.submitted.pop(0)
            handlers[job](key)

    def base(self, name="py-base", **extra):
        return self.bases.create(ORG, {"name": name, "dockerUrl": "python3",
                                       "language": "python3", **extra})

    def image(self, name="py", base="py-base", manifest="six\n", **extra):
        return self.images.create(ORG, {"name": name, "baseImageName": base,
                                        "runtimeDependencies": {"manifest": manifest}, **extra})

    def function(self, tmp_path, name="hello", image="py", org=ORG):
        path = tmp_path / "hello.py"
        path.write_text("def handle(ctx, payload):\n    return payload\n")
        source = base64.b64encode(pack(str(path))).decode()
        return self.functions.create(org, {"name": name, "image": image,
                                           "handler": "hello.handle", "source": source})

    def get(self, kind, name, org=ORG):
        return self.store.get(kind, org, name)


@pytest.fixture
def parts():
    return Parts()


# -- base images --------------------------------------------------------------------------

def test_base_image_is_checked_into_ready_with_the_builders_config(parts):
    base = parts.base()
    assert base["status"] == E.INITIALIZED and base["kind"] == "BaseImage"
    assert parts.jobs.submitted == [(CHECK_BASE_IMAGE, f"/dispatch/baseimage/{ORG}/py-base")]
    parts.drain()
    base = parts.get(E.BASE_IMAGE, "py-base")
    assert base["status"] == E.READY and base["config"] == {"language": "python3", "from": "python3"}


@pytest.mark.parametrize("bad, message", [
    ({"language": "cobol"}, "language 'cobol' is not supported (languages: nodejs, python3)"),
    ({"language": None}, "language is required"),
    ({"dockerUrl": ""}, "dockerUrl is required"),
    ({"name": "no good"}, "name 'no good' should start with letter"),
])
def test_bad_base_image_is_refused_naming_the_field(parts, bad, message):
    with pytest.raises(InvalidInput) as error:
        parts.base(**bad)
    assert message in error.value.message
    assert parts.store.list(E.BASE_IMAGE) == [] and parts.jobs.submitted == []


def test_base_image_the_builder_cannot_find_ends_in_error_with_its_reason(parts):
    parts.builder.base_failure = "pull missing/image:latest: not found"
    parts.base()
    parts.drain()
    base = parts.get(E.BASE_IMAGE, "py-base")
    assert base["status"] == E.ERROR and base["reason"] == ["pull missing/image:latest: not found"]


def test_ready_base_image_that_vanishes_is_missing_until_it_is_back(parts):
    parts.base()
    parts.drain()
    key = f"/dispatch/baseimage/{ORG}/py-base"
    parts.bases.check(key)  # present: nothing written
    assert parts.get(E.BASE_IMAGE, "py-base")["status"] == E.READY
    parts.builder.present, parts.builder.base_failure = False, "interpreter gone"
    parts.bases.check(key)
    base = parts.get(E.BASE_IMAGE, "py-base")
    assert base["status"] == E.MISSING and base["reason"] == ["interpreter gone"]
    parts.bases.check(key)  # still gone: stays MISSING, not ERROR, and is not rewritten
    assert parts.get(E.BASE_IMAGE, "py-base")["revision"] == base["revision"]
    parts.builder.present, parts.builder.base_failure = True, None
    parts.bases.check(key)
    assert parts.get(E.BASE_IMAGE, "py-base")["status"] == E.READY


def test_base_image_delete_is_refused_while_images_use_it(parts):
    parts.base()
    parts.drain()
    parts.image("py")
    parts.image("py2")
    with pytest.raises(Conflict, match="base image py-base is used by images py, py2"):
        parts.bases.delete(ORG, "py-base")


def test_unused_base_image_is_deleted(parts):
    parts.base()
    parts.drain()
    assert parts.bases.delete(ORG, "py-base")["status"] == E.DELETING
    parts.drain()
    assert parts.store.list(E.BASE_IMAGE) == []


def test_base_image_update_is_checked_again_and_its_language_is_kept_while_used(parts):
    parts.base()
    parts.drain()
    updated = parts.bases.update(ORG, "py-base", {"dockerUrl": "/usr/bin/python3",
                                                  "language": "python3"})
    assert updated["status"] == E.UPDATING
    parts.drain()
    assert parts.get(E.BASE_IMAGE, "py-base")["config"]["from"] == "/usr/bin/python3"
    parts.image()
    with pytest.raises(Conflict, match="used by images py"):
        parts.bases.update(ORG, "py-base", {"dockerUrl": "node", "language": "nodejs"})


# -- images -------------------------------------------------------------------------------

def test_image_is_built_onto_its_base(parts):
    parts.base()
    parts.drain()
    image = parts.image()
    assert image["status"] == E.INITIALIZED and image["language"] == "python3"
    assert image["dockerUrl"] is None
    parts.drain()
    image = parts.get(E.IMAGE, "py")
    assert image["status"] == E.READY and image["dockerUrl"].startswith("built/")
    assert image["config"]["from"] == "python3"  # the base's config reached the builder
    assert image["runtimeDependencies"] == {"manifest": "six\n"}


@pytest.mark.parametrize("bad, message", [
    ({"baseImageName": "nope"}, "Error fetching base image nope"),
    ({"baseImageName": None}, "baseImageName is required"),
    ({"runtimeDependencies": {"manifest": 3}}, "runtimeDependencies.manifest must be a string"),
    ({"systemDependencies": {"packages": [{"version": "1"}]}},
     "systemDependencies.packages[0].name is required"),
    ({"systemDependencies": {"packages": [{"name": "curl; rm -rf /"}]}},
     "systemDependencies.packages[0].name 'curl; rm -rf /' is not a package name"),
    ({"systemDependencies": {"packages": [{"name": "curl", "version": "$(x)"}]}},
     "systemDependencies.packages[0].version '$(x)' is not a package version"),
])
def test_bad_image_is_refused_naming_the_field(parts, bad, message):
    parts.base()
    parts.drain()
    with pytest.raises(InvalidInput) as error:
        parts.image(**bad)
    assert message in error.value.message
    assert parts.store.list(E.IMAGE) == [] and parts.jobs.submitted == []


def test_image_waits_for_its_base_and_is_built_once_the_base_is_ready(parts):
    parts.base()
    base_check = parts.jobs.submitted.pop()
    parts.image()
    parts.drain()  # the build finds the base INITIALIZED: waits
    assert parts.get(E.IMAGE, "py")["status"] == E.INITIALIZED and parts.builder.built == []
    parts.bases.check(base_check[1])  # the base is READY: its images are re-driven
    assert parts.jobs.submitted == [(BUILD_IMAGE, f"/dispatch/image/{ORG}/py")]
    parts.drain()
    assert parts.get(E.IMAGE, "py")["status"] == E.READY


def test_image_on_a_base_in_error_ends_in_error(parts):
    parts.builder.base_failure = "no such interpreter"
    parts.base()
    parts.image()
    parts.drain()
    image = parts.get(E.IMAGE, "py")
    assert image["status"] == E.ERROR
    assert image["reason"] == ["base image py-base is in ERROR: no such interpreter"]
    assert parts.builder.built == []


def test_failed_build_ends_in_error_with_the_builders_message(parts):
    parts.base()
    parts.drain()
    parts.builder.build_failure = "ERROR: No matching distribution found for nope==1"
    parts.image(manifest="nope==1\n")
    parts.drain()
    image = parts.get(E.IMAGE, "py")
    assert image["status"] == E.ERROR and image["dockerUrl"] is None
    assert image["reason"] == ["ERROR: No matching distribution found for nope==1"]


def test_update_rebuilds_and_removes_the_build_it_replaced(parts):
    parts.base()
    parts.drain()
    parts.image(manifest="six\n")
    parts.drain()
    old = parts.get(E.IMAGE, "py")["dockerUrl"]
    updated = parts.images.update(ORG, "py", {"baseImageName": "py-base",
                                              "runtimeDependencies": {"manifest": "idna\n"}})
    assert updated["status"] == E.UPDATING
    parts.drain()
    image = parts.get(E.IMAGE, "py")
    assert image["status"] == E.READY and image["dockerUrl"] != old
    assert parts.builder.removed == [old]


def test_a_build_shared_with_another_image_or_a_function_is_kept(parts, tmp_path):
    parts.base()
    parts.drain()
    parts.image("py")
    parts.image("twin")  # the same content: the same build
    parts.drain()
    shared = parts.get(E.IMAGE, "py")["dockerUrl"]
    assert parts.get(E.IMAGE, "twin")["dockerUrl"] == shared
    parts.function(tmp_path, image="py")
    parts.drain()
    parts.images.update(ORG, "py", {"baseImageName": "py-base",
                                    "runtimeDependencies": {"manifest": "idna\n"}})
    parts.drain()
    parts.images.delete(ORG, "twin")
    parts.drain()
    # the function's version still runs on the old build: it stays
    assert parts.builder.removed == [] and parts.store.list(E.IMAGE, ORG)[0]["name"] == "py"


def test_image_delete_is_refused_while_functions_use_it(parts, tmp_path):
    parts.base()
    parts.drain()
    parts.image()
    parts.drain()
    parts.function(tmp_path, "hello")
    parts.function(tmp_path, "world")
    parts.drain()
    with pytest.raises(Conflict, match="image py is used by functions hello, world"):
        parts.images.delete(ORG, "py")


def test_image_delete_waits_for_functions_being_deleted_then_removes_the_build(parts, tmp_path):
    parts.base()
    parts.drain()
    parts.image()
    parts.drain()
    url = parts.get(E.IMAGE, "py")["dockerUrl"]
    parts.function(tmp_path)
    parts.drain()
    parts.functions.delete(ORG, "hello")
    delete_function = parts.jobs.submitted.pop()
    assert parts.images.delete(ORG, "py")["status"] == E.DELETING  # DELETING ones don't count
    parts.drain()
    assert parts.get(E.IMAGE, "py")["status"] == E.DELETING  # waits for the function
    parts.functions.remove(delete_function[1])  # re-drives the image's deletion
    assert parts.jobs.submitted == [(DELETE_IMAGE, f"/dispatch/image/{ORG}/py")]
    parts.drain()
    assert parts.store.list(E.IMAGE) == [] and parts.builder.removed == [url]


def test_base_image_delete_waits_for_images_being_deleted(parts):
    parts.base()
    parts.drain()
    parts.image()
    parts.drain()
    parts.images.delete(ORG, "py")
    assert parts.bases.delete(ORG, "py-base")["status"] == E.DELETING
    parts.jobs.submitted.sort(key=lambda job: job[0] != DELETE_BASE_IMAGE)  # base job first
    parts.drain()
    assert parts.store.list(E.IMAGE) == [] and parts.store.list(E.BASE_IMAGE) == []


# -- one build at a time ------------------------------------------------------------------

def test_concurrent_build_jobs_for_one_image_build_it_once(parts):
    parts.base()
    parts.drain()
    image = parts.image()
    key = E.key_of(image)
    parts.jobs.submitted.clear()
    parts.builder.gate = threading.Event()
    first = threading.Thread(target=parts.images.build, args=(key,))
    first.start()
    assert parts.builder.building.wait(5)
    parts.images.build(key)  # finds it CREATING: left to the first job
    assert parts.get(E.IMAGE, "py")["status"] == E.CREATING
    parts.builder.gate.set()
    first.join(5)
    assert parts.get(E.IMAGE, "py")["status"] == E.READY and parts.builder.built == ["py"]


def test_a_job_waiting_for_the_build_lock_finds_the_image_built(parts):
    parts.base()
    parts.drain()
    key = E.key_of(parts.image())
    lock = parts.store.lock(f"image-build/{ORG}/py", 5)
    lock.acquire()  # another worker is building it
    waiter = threading.Thread(target=parts.images.build, args=(key,))
    waiter.start()
    image = parts.get(E.IMAGE, "py")
    parts.store.update(dict(image, status=E.READY, dockerUrl="built/else", config={}))
    lock.release()
    waiter.join(5)
    assert not waiter.is_alive() and parts.builder.built == []


def test_an_update_during_a_build_rebuilds_after_it_and_drops_the_stale_result(parts):
    parts.base()
    parts.drain()
    key = E.key_of(parts.image(manifest="six\n"))
    parts.jobs.submitted.clear()
    parts.builder.gate = threading.Event()
    first = threading.Thread(target=parts.images.build, args=(key,))
    first.start()
    assert parts.builder.building.wait(5)
    parts.images.update(ORG, "py", {"baseImageName": "py-base",
                                    "runtimeDependencies": {"manifest": "idna\n"}})
    second = threading.Thread(target=parts.images.build, args=(key,))
    second.start()  # waits for the lock
    parts.builder.gate.set()
    first.join(5)
    second.join(5)
    image = parts.get(E.IMAGE, "py")
    assert image["status"] == E.READY and parts.builder.built == ["py", "py"]
    assert parts.builder.removed == ["built/" + hashlib.sha256(b"six\n").hexdigest()[:8]]
    assert image["dockerUrl"] == "built/" + hashlib.sha256(b"idna\n").hexdigest()[:8]


# -- functions on images ------------------------------------------------------------------

def test_function_waits_for_its_image_and_is_built_once_it_is_ready(parts, tmp_path):
    parts.base()
    parts.drain()
    parts.image()
    build_image = parts.jobs.submitted.pop()
    fn = parts.function(tmp_path)
    parts.drain()
    assert parts.get(E.FUNCTION, "hello")["status"] == E.INITIALIZED  # waiting
    parts.images.build(build_image[1])
    assert (CREATE_FUNCTION, E.key_of(fn)) in parts.jobs.submitted  # re-driven
    parts.drain()
    fn = parts.get(E.FUNCTION, "hello")
    image = parts.get(E.IMAGE, "py")
    assert fn["status"] == E.READY and fn["imageURL"] == image["dockerUrl"]
    assert fn["imageConfig"] == {**image["config"], "functionImage": f"fn/{fn['faasId']}"}
    assert fn["functionImageURL"] == f"fn/{fn['faasId']}"
    assert parts.driver.configs[-1] == fn["imageConfig"]  # prepared with the builder's config


def test_function_on_an_image_in_error_ends_in_error(parts, tmp_path):
    parts.base()
    parts.drain()
    parts.builder.build_failure = "ERROR: No matching distribution found for nope"
    parts.image()
    parts.function(tmp_path)
    parts.drain()
    fn = parts.get(E.FUNCTION, "hello")
    assert fn["status"] == E.ERROR
    assert fn["reason"] == ["image py is in ERROR: ERROR: No matching distribution found for nope"]


def test_runs_use_the_versions_image_config_without_reading_the_image(parts, tmp_path, monkeypatch):
    parts.base()
    parts.drain()
    parts.image()
    parts.function(tmp_path)
    parts.drain()
    fn = parts.get(E.FUNCTION, "hello")

    def no_lookup(*args):
        raise AssertionError("the run path looked the image up")

    monkeypatch.setattr(parts.catalog, "resolve", no_lookup)
    run = parts.runs.start(ORG, "hello", {"input": {"x": 1}})
    parts.drain()
    assert parts.runs.get(ORG, run["name"])["status"] == E.READY
    assert parts.driver.configs[-1] == fn["imageConfig"]


def test_an_image_of_the_store_shadows_the_builtin_of_the_same_name_in_its_org(parts, tmp_path):
    parts.base()
    parts.drain()
    parts.image("python3")
    parts.drain()
    parts.function(tmp_path, image="python3")
    parts.function(tmp_path, image="python3", org="other")
    parts.drain()
    mine = parts.get(E.FUNCTION, "hello")
    theirs = parts.get(E.FUNCTION, "hello", org="other")
    assert mine["imageURL"] == parts.get(E.IMAGE, "python3")["dockerUrl"]
    assert theirs["status"] == E.READY and theirs["imageURL"] is None  # the built-in
    assert theirs["imageConfig"]["interpreter"]


def test_unknown_image_is_refused_naming_it_and_the_known_ones(parts, tmp_path):
    parts.base()
    parts.drain()
    parts.image("py")
    with pytest.raises(InvalidInput, match=r"image nope not found \(available images: "
                                           r"nodejs, py, python3\)"):
        parts.function(tmp_path, image="nope")


def test_an_updated_function_keeps_serving_its_old_image_config_while_it_builds(parts, tmp_path):
    parts.base()
    parts.drain()
    parts.image()
    parts.function(tmp_path)
    parts.drain()
    old = parts.get(E.FUNCTION, "hello")
    parts.images.update(ORG, "py", {"baseImageName": "py-base",
                                    "runtimeDependencies": {"manifest": "idna\n"}})
    update = parts.functions.update(ORG, "hello", {
        "image": "py", "handler": "hello.handle",
        "source": base64.b64encode(pack(str(tmp_path / "hello.py"))).decode()})
    assert update["previous"]["imageConfig"] == old["imageConfig"]
    run = parts.runs.start(ORG, "hello", {})
    parts.runs.execute(E.key_of(run))  # the image rebuilds: the function waits, old one serves
    assert parts.driver.configs[-1] == old["imageConfig"]
    parts.drain()
    new = parts.get(E.FUNCTION, "hello")
    assert new["status"] == E.READY and new["imageURL"] != old["imageURL"]


# -- the reconciler's image rows ----------------------------------------------------------

def test_reconciler_checks_ready_base_images_for_presence_periodically(parts):
    parts.base()
    parts.drain()
    base = parts.get(E.BASE_IMAGE, "py-base")
    reconciler = Reconciler(parts.store, parts.jobs, stuck_seconds=5, base_check_seconds=60)
    t = base["modifiedTime"]
    assert reconciler.reconcile_once(now=t + 30) == {}
    assert reconciler.reconcile_once(now=t + 61) == {"checked_base_image": 1}
    assert reconciler.reconcile_once(now=t + 62) == {}  # once per period
    parts.builder.present, parts.builder.base_failure = False, "gone"
    parts.drain()
    assert parts.get(E.BASE_IMAGE, "py-base")["status"] == E.MISSING
    assert reconciler.reconcile_once(now=t + 65) == {}  # submitted at t + 61 already
    assert reconciler.reconcile_once(now=t + 67) == {"resubmitted_check_base_image": 1}
    parts.builder.present, parts.builder.base_failure = True, None
    parts.drain()
    assert parts.get(E.BASE_IMAGE, "py-base")["status"] == E.READY


def test_reconciler_takes_back_an_image_whose_builder_died(parts):
    parts.base()
    parts.drain()
    image = parts.image()
    parts.jobs.submitted.clear()
    parts.store.update(dict(image, status=E.CREATING, claimExpires=100.0))
    reconciler = Reconciler(parts.store, parts.jobs)
    assert reconciler.reconcile_once(now=99.0) == {}
    assert reconciler.reconcile_once(now=101.0) == {"rebuilt_image": 1}
    parts.drain()
    assert parts.get(E.IMAGE, "py")["status"] == E.READY


def test_reconciler_resubmits_stuck_image_jobs_at_most_once_per_period(parts):
    parts.base()
    parts.drain()
    image = parts.image()
    parts.jobs.submitted.clear()  # the message is lost
    reconciler = Reconciler(parts.store, parts.jobs, stuck_seconds=5)
    t = image["modifiedTime"]
    assert reconciler.reconcile_once(now=t + 6).get("resubmitted_build_image") == 1
    assert "resubmitted_build_image" not in reconciler.reconcile_once(now=t + 7)
    parts.drain()
    assert parts.get(E.IMAGE, "py")["status"] == E.READY
