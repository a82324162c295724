"""Every hook a tenfra plugin can implement, grouped by the phase that calls it.

A plugin is a module (or object) with functions decorated by
:data:`tenfra.hookimpl` whose names match the specifications below.  Built-in
plugins and third-party ``tenfra-*`` packages are found the same way: through
the ``tenfra`` entry-point group.  Site plugins (the ``plugins/`` folder of a
recipe repository) are loaded from the signed release by the agent and from the
repository by ``tenfra run``, ``tenfra test`` and ``tenfra compile``.

Registration hooks are called once per process, the first time that kind of
object is needed, and hand the plugin a registry.  Registering a name that
another plugin already registered fails at start-up, naming both plugins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import pluggy

if TYPE_CHECKING:
    from tenfra.pluginmanager import Registry

hookspec = pluggy.HookspecMarker("tenfra")


# -- registration -----------------------------------------------------------------


@hookspec
def tenfra_add_resource_types(registry: Registry[Any]) -> None:
    """Register resource types (the keys a task may use, such as ``copy``).

    Called the first time a recipe is loaded, checked or run in this process.

    :param registry: Call ``registry.add_resource_type(cls)`` with a subclass
        of :class:`tenfra.resource.ResourceType`; its ``name`` attribute is the
        task key.
    :return: Nothing; the registry collects what is added.
    """


@hookspec
def tenfra_add_host_sources(registry: Registry[Any]) -> None:
    """Register host sources, used by ``hostSources`` in an inventory.

    Called the first time an inventory with host sources is loaded.

    :param registry: Call ``registry.add_host_source(cls)`` with a subclass of
        :class:`tenfra.inventory.HostSource`.
    :return: Nothing; the registry collects what is added.
    """


@hookspec
def tenfra_add_vars_sources(registry: Registry[Any]) -> None:
    """Register vars sources, used by ``varsSources`` and the ``load`` task.

    Called the first time an inventory, a recipe or a ``load`` task needs one.

    :param registry: Call ``registry.add_vars_source(cls)`` with a subclass of
        :class:`tenfra.inventory.VarsSource`.
    :return: Nothing; the registry collects what is added.
    """


@hookspec
def tenfra_add_test_runners(registry: Registry[Any]) -> None:
    """Register test runners, named by ``runner`` in a test suite.

    Called the first time ``tenfra test`` needs a runner.

    :param registry: Call ``registry.add_test_runner(cls)`` with a subclass of
        :class:`tenfra.testsuite.TestRunner`.
    :return: Nothing; the registry collects what is added.
    """


@hookspec
def tenfra_add_report_hooks(registry: Registry[Any]) -> None:
    """Register report hooks, which the provider runs on each received report.

    Called when the provider starts and reads its ``hooks`` configuration.

    :param registry: Call ``registry.add_report_hook(cls)`` with a subclass of
        :class:`tenfra.reporting.ReportHook`.
    :return: Nothing; the registry collects what is added.
    """


@hookspec
def tenfra_add_template_filters(registry: Registry[Any]) -> None:
    """Register Jinja2 filters available in every template and expression.

    Called the first time a template environment is built in this process.

    :param registry: Call ``registry.add_template_filter(name, function)``.
    :return: Nothing; the registry collects what is added.
    """


@hookspec
def tenfra_add_template_globals(registry: Registry[Any]) -> None:
    """Register Jinja2 globals (functions or values) for every template.

    Called the first time a template environment is built in this process.

    :param registry: Call ``registry.add_template_global(name, value)``.
    :return: Nothing; the registry collects what is added.
    """


@hookspec
def tenfra_add_facts(registry: Registry[Any]) -> None:
    """Register facts, gathered lazily and exposed to templates as ``facts``.

    Called the first time facts are read on a host.

    :param registry: Call ``registry.add_fact(name, function)``; ``function``
        takes no argument and returns a JSON-serialisable value.  It is called
        only when a template or the agent reads that fact.
    :return: Nothing; the registry collects what is added.
    """


@hookspec
def tenfra_add_cli_commands(registry: Registry[Any]) -> None:
    """Register extra ``tenfra`` subcommands.

    Called when the CLI is asked for a command it does not define itself, and
    when it lists its commands (``tenfra --help``).

    :param registry: Call ``registry.add_cli_command(command)`` with a
        :class:`click.Command`; its ``name`` is the subcommand name.
    :return: Nothing; the registry collects what is added.
    """


@hookspec
def tenfra_add_provider_blueprints(registry: Registry[Any]) -> None:
    """Register Flask blueprints mounted by the provider.

    Called once when the provider application is created.  A blueprint is
    served behind the provider's authentication: routes are refused unless
    they are added to the allow-list with ``registry.allow_anonymous``.

    :param registry: Call ``registry.add_provider_blueprint(blueprint)`` with a
        :class:`flask.Blueprint`; its ``name`` must be unique.
    :return: Nothing; the registry collects what is added.
    """


# -- recipe runs (tenfra run, tenfra test, the agent) -----------------------------


@hookspec
def tenfra_before_recipe(recipe: Any, host: str, check: bool) -> None:
    """Called before the first task of a recipe runs.

    :param recipe: The :class:`tenfra.recipe.Recipe` about to run.
    :param host: The name of the host it runs for.
    :param check: True in check (dry-run) mode.
    :return: Ignored.
    """


@hookspec
def tenfra_task_result(recipe: Any, task: Any, result: Any, host: str) -> None:
    """Called after every task, whatever its status, once its result is final.

    Values marked ``sensitive`` are already masked in ``result``.

    :param recipe: The :class:`tenfra.recipe.Recipe` the task belongs to.
    :param task: The :class:`tenfra.recipe.Task` that ran.
    :param result: Its :class:`tenfra.report.TaskReport`.
    :param host: The name of the host it ran for.
    :return: Ignored.
    """


@hookspec
def tenfra_after_recipe(recipe: Any, report: Any, host: str) -> None:
    """Called after the last task and the handlers of a recipe ran.

    :param recipe: The :class:`tenfra.recipe.Recipe` that ran.
    :param report: Its :class:`tenfra.report.RecipeReport`.
    :param host: The name of the host it ran for.
    :return: Ignored.
    """


# -- compile (tenfra compile) ------------------------------------------------------


@hookspec
def tenfra_after_compile(manifest: dict[str, Any], url: str) -> None:
    """Called after a release was written and signed.

    :param manifest: The release manifest as written (a JSON-like mapping).
    :param url: The storage URL the release was written to.
    :return: Ignored.
    """


# -- provider ----------------------------------------------------------------------


@hookspec
def tenfra_report_received(report: dict[str, Any], host: str) -> None:
    """Called by the provider after a run report was stored.

    A plugin that raises is logged and never blocks ingestion.

    :param report: The report as stored (JSON-like mapping, secrets redacted).
    :param host: The name of the authenticated host that sent it.
    :return: Ignored.
    """


# -- agent -------------------------------------------------------------------------


@hookspec(firstresult=True)
def tenfra_agent_hostname(default: str) -> Optional[str]:
    """Choose the host name an agent enrols and reports under.

    Called once when an agent enrols without ``--host``.

    This is a first-result hook: the first plugin that returns a value other
    than ``None`` wins, and later plugins are not called.

    :param default: The name tenfra would use (the machine's host name).
    :return: A host name, or ``None`` to keep ``default``.
    """
