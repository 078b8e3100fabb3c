# A job that allocates enough container objects to run the collector's oldest generation
# (bench/cpu_ab.py --script): what gc.freeze() in the zygote is for.
def main():
    keep = [{"i": i} for i in range(300000)]
    return 1 if len(keep) else 0  # bench.py checks for 1
