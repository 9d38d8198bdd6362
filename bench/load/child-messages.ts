import type { ChildProcess } from 'node:child_process';

/** The next IPC message of `type` from `child`, or a rejection when it exits or takes longer than `timeoutMs`. */
export function nextMessage<M extends { type: string }>(child: ChildProcess, type: M['type'], timeoutMs: number): Promise<M> {
  return new Promise((resolve, reject) => {
    const finish = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    const onMessage = (message: M) => {
      if (message.type !== type) return;
      finish();
      resolve(message);
    };
    const onExit = (code: number | null) => {
      finish();
      reject(new Error(`a load process exited with code ${code}`));
    };
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`a load process did not say "${type}" within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}
