import { Suspense } from "react";
import { ComparePage } from "../../components/ComparePage";

// the runs to compare are in the URL, which is known only in the browser at build time
export default function Compare() {
  return (
    <Suspense>
      <ComparePage />
    </Suspense>
  );
}
