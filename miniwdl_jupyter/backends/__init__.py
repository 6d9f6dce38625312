"""Container backends: miniwdl `TaskContainer` plugins, one module each, registered under the
entry-point group `miniwdl.plugin.container_backend`. They import nothing from the run machinery;
choosing one for a run is `backend_choice`'s job, cleaning up after a dead run `leftovers`'."""
