"""The configstore: users, orgs, project groups, projects, remote sources, secrets and variables.

Public surface (see ``docs/configstore.md``):

* ``actions.ActionHandler``: every query and operation, over a ``DataManager`` and a
  ``readdb.ConfigReadDB`` (what the REST handlers call);
* ``ops``: the operations as pure planners on a ``state.ConfigState`` (checks, writes, change groups);
* ``names``, ``paths``, ``validation``, ``changegroups``: names and refs, computed paths, request
  validation, change group names;
* ``tree``: secrets/variables along the tree and a project run's variables (``run_variables``);
* ``tokens``, ``keys``: hashed API tokens, random secrets and SSH deploy keys.
"""
