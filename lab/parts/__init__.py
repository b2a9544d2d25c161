"""The parts a run is built from: the interfaces (TextEncoder, Generator, Discriminator, LossRecipe),
the name -> factory registries, and building parts from a config.

Read by tinkerers adding a plugin. Imports only lab.config and lab.errors."""
