"""Where a job goes on SLURM: the config's `cluster:` section turned into a rule's Snakemake resources.

The rules read these resources themselves, so the profile (slurm/config.yaml) carries no per-rule
`set-resources`: a site changes `cluster:` in config.yaml, a `--configfile`, or `--config cluster=...`, all of
which Snakemake merges key by key. A `--set-resources` on the command line would instead replace the
profile's whole list and silently drop the GPU routing of every rule it does not name.

snakemake-executor-plugin-slurm turns the resources into sbatch options: slurm_partition -> -p,
slurm_account -> -A, gpu (+ gpu_model) -> --gpus=[model:]N, gres -> --gres, constraint -> -C,
cpus_per_gpu -> --cpus-per-gpu. A local run ignores all but `gpu`, which `--resources gpu=N` caps.
"""

from __future__ import annotations

from dataclasses import dataclass

from cineflow.config import ConfigError, from_dict


@dataclass(frozen=True)
class ClusterConfig:
    """The `cluster:` section (defaults in the schema).

    Attributes:
        cpu_partition: partition of the CPU jobs (frame cache, normalisation); None: the cluster's default.
        gpu_partition: partition of the GPU jobs (train, evaluate, Grad-CAM, ...); None: the cluster's default.
        account: sbatch --account of every job; None: none (or the plugin's guess).
        gpu_request: "gpus" (sbatch --gpus=N) or "gres" (--gres=gpu:N, for sites that take GPUs only as
            generic resources: SLURM before 19.05, or the cons_res select plugin).
        gpu_model: a GPU type (--gpus=a100:N or --gres=gpu:a100:N); None: any.
        constraint: a node feature expression of the GPU jobs (sbatch --constraint, e.g. "a100|h100").
        cpus_per_gpu: CPUs per GPU of every GPU job; None: what each job uses (train: its threads).
    """

    cpu_partition: str | None
    gpu_partition: str | None
    account: str | None
    gpu_request: str
    gpu_model: str | None
    constraint: str | None
    cpus_per_gpu: int | None

    from_dict = classmethod(from_dict)

    def cpu_job(self) -> dict:
        """Resources of a job without a GPU: its partition and the account."""
        return _set(slurm_partition=self.cpu_partition, slurm_account=self.account)

    def gpu_job(self, gpus: int, cpus: int) -> dict:
        """Resources of a job on `gpus` GPUs that runs `cpus` threads and processes per GPU.

        `gpu` is always there: 0 in gres mode, where the plugin would otherwise add --gpus to --gres.
        """
        model = [self.gpu_model] if self.gpu_model else []
        if self.gpu_request == "gres":
            request = {"gpu": 0, "gres": ":".join(["gpu", *model, str(gpus)])}
        else:
            request = {"gpu": gpus, **_set(gpu_model=self.gpu_model)}
        return _set(slurm_partition=self.gpu_partition, slurm_account=self.account, **request,
                    constraint=self.constraint, cpus_per_gpu=self.cpus_per_gpu or cpus)

    def check(self, train_cpus: int) -> None:
        """A training job given fewer CPUs than it runs threads and loader processes would crawl: refuse it
        at parse time, naming both fixes."""
        if self.cpus_per_gpu and self.cpus_per_gpu < train_cpus:
            raise ConfigError(f"cluster.cpus_per_gpu is {self.cpus_per_gpu}, but a training job runs {train_cpus} "
                              "threads and loader processes per GPU (resources.train_threads + "
                              "resources.loader_workers): raise cluster.cpus_per_gpu or lower "
                              "resources.loader_workers")


def _set(**resources) -> dict:
    """The resources that have a value: Snakemake takes no None, and a missing key keeps SLURM's default."""
    return {key: value for key, value in resources.items() if value is not None}
