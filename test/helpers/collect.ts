/** Collects values and waits for the n-th. */
export function collector<T>() {
  const values: T[] = [];
  let wake = () => {};
  return {
    values,
    push: (value: T) => {
      values.push(value);
      wake();
    },
    async atLeast(n: number, timeoutMs = 5000): Promise<T[]> {
      const deadline = Date.now() + timeoutMs;
      while (values.length < n) {
        if (Date.now() > deadline) throw new Error(`only ${values.length} of ${n} values`);
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 50);
        });
      }
      return values;
    },
  };
}
