"""Jobs: the library functions behind the commands, each returning a typed result.

- :func:`p3m.jobs.matte.matte_files`: mattes, cut-outs, composites for inputs.
- :func:`p3m.jobs.anonymize.anonymize_files`: fail-closed face blur with an audit.
- :func:`p3m.jobs.audit.audit_folders`: the privacy audit of anonymized images.
- :func:`p3m.jobs.evaluate.evaluate_folders`: metrics of predicted mattes.
- :func:`p3m.jobs.benchmark.run_benchmark`: engines on the P3M-10k test splits.

The command line parses, calls one of these, and prints the result; the demo
renders the results; a service can return ``result.to_dict()`` as JSON.
"""
