// A model folder read through Deno's own file API (the scripts in test/hosts/ run under Deno).
export function denoFolderSource(dir) {
  return {
    name: dir,
    open: async (file) => {
      try {
        const bytes = await Deno.readFile(`${dir}/${file}`);
        return { name: `${dir}/${file}`, size: bytes.length, read: async (offset, length) => bytes.slice(offset, offset + length) };
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return null;
        throw e;
      }
    },
  };
}
