from tuneladder.stages import Runtime, logged
from tuneladder.stages.gpu_probe import gpu_probe_stage

with logged(snakemake.log[0]):
    gpu_probe_stage(
        data_dir=snakemake.params.data_dir,
        task=snakemake.params.task,
        train=snakemake.params.train,
        seed=snakemake.params.seed,
        gpu=snakemake.params.gpu,
        runtime=Runtime.from_params(snakemake.params.runtime, threads=snakemake.threads),
        out=snakemake.output[0],
        log_path=snakemake.log[0],
    )
