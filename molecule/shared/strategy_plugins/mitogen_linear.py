"""The ``mitogen_linear`` strategy of the mitogen package installed in .venv.

A scenario opts in with (path relative to its molecule.yml):

    ansible:
      cfg:
        defaults:
          strategy_plugins: ${MOLECULE_SCENARIO_DIRECTORY}/../shared/strategy_plugins
          strategy: mitogen_linear

so it needs no site-packages path of its own. See docs/testing.md.
"""

from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule  # noqa: F401
